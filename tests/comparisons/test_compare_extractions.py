"""manage.py compare_extractions: one tiny model extracted in FP32, Q8, Q4 and Q2 (real
bitsandbytes and HQQ layers on the CPU), compared through the command and its job; the record
keeps the result."""

from __future__ import annotations

import json
import shutil
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from models_app.ml import extraction, loading
from models_app.ml.extraction import ExtractionSettings
from models_app.models import Comparison
from tests.helpers import SAMPLE_TEXTS
from tests.web.owned import dataset_of, extraction_of, model_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FORMATS = ["fp32", "q8", "q4", "q2"]
CONTEXT = 24


@pytest.fixture(scope="module")
def format_folders(model_sources, tmp_path_factory):
    """The same texts extracted from the same model in each format (float32 files)."""
    folders = {}
    for fmt in FORMATS:
        loaded = loading.load(model_sources["llama"], fmt, device="cpu")
        assert loaded.effective_format == fmt, loaded.fallback_reason
        folder = tmp_path_factory.mktemp(fmt)
        settings = ExtractionSettings(
            layers=[0, 1], hooks=["residual", "mlp"], batch_size=4, context_length=CONTEXT, dtype="float32"
        )
        model = {"repo_id": "tiny/llama", "commit_sha": "c0ffee", "effective_quantization": fmt}
        extraction.extract(
            loaded.model, loaded.tokenizer, SAMPLE_TEXTS * 3, settings, folder, metadata={"model": model}
        )
        folders[fmt] = folder
    return folders


@pytest.fixture
def extractions(format_folders, owner):
    """Completed Extraction records (one model, one dataset) holding each format's files."""
    model, dataset = model_of(owner, repo_id="tiny/llama"), dataset_of(owner)
    records = {}
    for fmt, folder in format_folders.items():
        record = extraction_of(owner, model=model, dataset=dataset, layers=[0, 1], hooks=["residual", "mlp"])
        shutil.copytree(folder, record.output_dir)
        meta = json.loads((record.output_dir / "metadata.json").read_text())
        meta.update(extraction_id=record.pk, dataset={"id": dataset.pk})
        (record.output_dir / "metadata.json").write_text(json.dumps(meta))
        records[fmt] = record
    return records


def run(*args) -> str:
    out = StringIO()
    call_command("compare_extractions", *map(str, args), stdout=out)
    return out.getvalue()


def test_the_error_grows_as_the_format_narrows(extractions):
    ids = [extractions[fmt].pk for fmt in FORMATS]
    result = json.loads(run(*ids, "--json"))
    assert result["base"] == ids[0]
    assert [(o["id"], o["format"]) for o in result["others"]] == list(zip(ids[1:], FORMATS[1:], strict=True))
    for position in range(4):  # each (layer, hook)
        hooks = [other["hooks"][position] for other in result["others"]]
        assert len({(h["layer"], h["hook"]) for h in hooks}) == 1
        errors = [h["relative_error"] for h in hooks]
        assert 0 < errors[0] < errors[1] < errors[2], (hooks[0]["layer"], hooks[0]["hook"], errors)
        assert hooks[0]["cosine"] > hooks[1]["cosine"] > hooks[2]["cosine"]
        assert hooks[0]["sqnr_db"] > hooks[1]["sqnr_db"] > hooks[2]["sqnr_db"]
    stored = Comparison.objects.get()
    assert stored.is_completed and stored.result == result and stored.other_ids == ids[1:]
    assert stored.tokens_done == stored.tokens_total == result["others"][0]["hooks"][0]["tokens"] > 0


def test_an_extraction_compared_with_a_copy_of_itself_is_equal(extractions, owner):
    base = extractions["fp32"]
    copy = extraction_of(
        owner, model=base.model, dataset=base.dataset, layers=[0, 1], hooks=["residual", "mlp"]
    )
    shutil.copytree(base.output_dir, copy.output_dir)
    table = run(base.pk, copy.pk)
    assert f"Comparison {Comparison.objects.get().pk}: extraction {base.pk} against {copy.pk}" in table
    rows = [line.split() for line in table.splitlines()[2:]]
    assert len(rows) == 4 and all(row[4:7] == ["1.0000", "0.0000", "equal"] for row in rows), table


def test_it_refuses_what_it_cannot_compare(extractions, owner):
    base = extractions["fp32"]
    with pytest.raises(CommandError, match="No extraction with id 999"):
        run(base.pk, 999)
    running = extraction_of(owner, status="extracting")
    with pytest.raises(CommandError, match=f"Extraction {running.pk} is not completed"):
        run(base.pk, running.pk)
    elsewhere = extraction_of(owner, layers=[0, 1], hooks=["residual", "mlp"])
    shutil.copytree(extractions["q8"].output_dir, elsewhere.output_dir)
    meta = json.loads((elsewhere.output_dir / "metadata.json").read_text())
    meta["dataset"] = {"id": 12345}
    (elsewhere.output_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CommandError, match=f"Extraction {elsewhere.pk} has another dataset"):
        run(base.pk, elsewhere.pk)
    assert not Comparison.objects.exists()


def test_an_extraction_is_not_deleted_while_a_comparison_reads_it(extractions):
    from models_app.models import StillRunning

    base, other = extractions["fp32"], extractions["q8"]
    reading = Comparison.objects.create(base=base, other_ids=[other.pk], status="comparing")
    for record in (base, other):
        with pytest.raises(StillRunning, match=f"Comparison {reading.pk} is reading this extraction"):
            record.delete_with_files()
        assert record.output_dir.is_dir()
    Comparison.objects.filter(pk=reading.pk).update(status="completed")
    other.delete_with_files()
    assert not other.output_dir.exists()
