"""Fixtures of the comparison tests (tests/comparisons, tests/browser): one engine folder copied as
the same repository and commit in FP32, Q8 and Q4, with one (layer, hook) scaled in each copy, so
where each format departs is known."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from models_app.models import LanguageModel
from tests.exports.fixtures import CONTEXT
from tests.web.owned import dataset_of, extraction_of, model_of

# Each format's copy of the arrays: the (layer, hook)s scaled, and by how much.
SCALED = {"fp32": {}, "q8": {"layer_1_mlp": 1.01}, "q4": {"layer_0_residual": 1.3, "layer_1_mlp": 1.1}}


@pytest.fixture
def formats(engine_folder, owner):
    """formats(user=owner, dataset=None) -> {format: completed Extraction} of one repository and
    commit in FP32, Q8 and Q4, over one dataset."""

    def make(user=owner, dataset=None):
        dataset = dataset or dataset_of(user)
        records = {}
        for fmt, scaled in SCALED.items():
            model = LanguageModel.objects.filter(repo_id="tiny/llama", quantization=fmt, owner=user).first()
            model = model or model_of(user, repo_id="tiny/llama", quantization=fmt, commit_sha="c0ffee")
            record = extraction_of(
                user,
                model=model,
                dataset=dataset,
                layers=[0, 1],
                hooks=["residual", "mlp"],
                context_length=CONTEXT,
            )
            shutil.copytree(engine_folder, record.output_dir)
            for key, factor in scaled.items():
                path = record.output_dir / f"{key}.npy"
                np.save(path, np.load(path) * np.float32(factor))
            meta = json.loads((record.output_dir / "metadata.json").read_text())
            meta.update(
                extraction_id=record.pk,
                dataset={"id": dataset.pk},
                model={"repo_id": "tiny/llama", "commit_sha": "c0ffee", "effective_quantization": fmt},
            )
            (record.output_dir / "metadata.json").write_text(json.dumps(meta))
            record.metadata = meta
            record.save(update_fields=["metadata"])
            records[fmt] = record
        return records

    return make
