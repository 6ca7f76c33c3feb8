"""manage.py export_activations: a completed extraction of the studio exported in both formats,
into its own folder or a chosen one, and the command's refusals, each one line."""

from __future__ import annotations

import json
from io import StringIO

import datasets
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from models_app.models import ActivationExport

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> str:
    out = StringIO()
    call_command("export_activations", *map(str, args), stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.slow
def test_it_exports_a_completed_extraction_in_both_formats(extract, tmp_path):
    record = extract()
    out = run(
        record.pk,
        "--format",
        "saelens",
        "--hook",
        "layer_1_mlp",
        "--context-size",
        "8",
        "--shuffle-seed",
        "1",
    )
    export = ActivationExport.objects.get()
    folder = record.output_dir / "exports" / f"{export.pk}-saelens"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert export.manifest == manifest and export.status == "completed" and export.owner is None
    assert out.strip() == (
        f"Export {export.pk}: {manifest['rows']:,} rows of 8 ({manifest['tokens']:,} tokens;"
        f" {manifest['dropped_tokens']:,} in a last partial row left out) -> {folder}"
    )
    assert datasets.load_from_disk(str(folder)).column_names == ["model.layers.1.mlp", "token_ids"]
    assert (manifest["extraction_id"], manifest["shuffle_seed"], manifest["dataset"]["name"]) == (
        record.pk,
        1,
        "corpus",
    )
    assert manifest["model"]["repo_id"] == "tiny/llama"
    assert manifest["model"]["commit"] == record.model.commit_sha
    assert manifest["model"]["format"] == "fp16"
    with pytest.raises(CommandError, match="already exists"):
        run(record.pk, "--format", "saelens", "--out", folder)

    run(record.pk, "--format", "TOKENS", "--out", tmp_path / "flat")
    mask = np.load(record.output_dir / "attention_mask.npy").astype(bool)
    for key in ("layer_0_residual", "layer_0_mlp", "layer_1_residual", "layer_1_mlp"):
        flat = np.load(tmp_path / "flat" / f"{key}.npy")
        assert flat.tobytes() == np.load(record.output_dir / f"{key}.npy")[mask].tobytes()


@pytest.mark.slow
def test_it_refuses_in_one_line_and_writes_nothing(extract, tmp_path):
    record = extract()
    refusals = [
        ((record.pk + 1, "--format", "tokens"), f"No extraction with id {record.pk + 1}."),
        ((record.pk, "--format", "tokens", "--shuffle-seed", "3"), "applies to the saelens format only"),
        (
            (record.pk, "--format", "saelens", "--hook", "layer_9_mlp"),
            "No hook layer_9_mlp in this extraction",
        ),
        ((record.pk, "--format", "saelens", "--context-size", "100000"), "not one row of 100000"),
    ]
    for args, message in refusals:
        with pytest.raises(CommandError, match=message):
            run(*args, "--out", tmp_path / "exports" / "out")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(CommandError, match=r"\(FileExistsError\)"):  # --out cannot be made there
        run(record.pk, "--format", "tokens", "--out", tmp_path / "a-file" / "out")
    record.status = "failed"
    record.save(update_fields=["status"])
    with pytest.raises(CommandError, match=f"Extraction {record.pk} has not completed \\(failed\\)"):
        run(record.pk, "--format", "tokens", "--out", tmp_path / "exports" / "out")
    assert not (tmp_path / "exports").exists()
    # Only the export that got as far as its job is recorded, failed, with the reason.
    assert list(ActivationExport.objects.values_list("status", flat=True)) == ["failed"]
