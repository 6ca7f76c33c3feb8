"""Records of each kind with a given owner, written directly (no job runs)."""

from __future__ import annotations

from models_app.models import Dataset, Extraction, LanguageModel
from templates_app.models import ExtractionTemplate


def model_of(user, **fields) -> LanguageModel:
    options = {"name": "llama", "repo_id": "tiny/llama", "status": "ready", "owner": user, **fields}
    return LanguageModel.objects.create(**options)


def dataset_of(user, **fields) -> Dataset:
    options = {
        "name": "corpus",
        "source": "upload",
        "file_format": "txt",
        "status": "ready",
        "num_samples": 3,
        "owner": user,
        **fields,
    }
    return Dataset.objects.create(**options)


def extraction_of(user, model=None, dataset=None, **fields) -> Extraction:
    options = {
        "model": model or model_of(user, repo_id=f"tiny/m{LanguageModel.objects.count()}"),
        "dataset": dataset or dataset_of(user),
        "layers": [0],
        "hooks": ["residual"],
        "status": "completed",
        "owner": user,
        **fields,
    }
    return Extraction.objects.create(**options)


def template_of(user, **fields) -> ExtractionTemplate:
    options = {
        "name": f"t{ExtractionTemplate.objects.count()}",
        "layer_indices": [0],
        "hook_types": ["residual"],
        "owner": user,
        **fields,
    }
    return ExtractionTemplate.objects.create(**options)
