"""manage.py check_formats: the tiny Llama downloaded from the local hub in FP32, Q8 and Q4 (real
bitsandbytes layers on the CPU), run over the corpus by the real job; every ready format of the
repository and commit is checked against the most precise, and the record keeps the result. The
figures themselves are checked against numpy in tests/ml/test_format_check.py."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from models_app.models import Dataset, FormatCheck, LanguageModel

pytestmark = pytest.mark.django_db(transaction=True)


def download(fmt: str) -> LanguageModel:
    call_command("download_model", "tiny/llama", "--quantization", fmt, stdout=StringIO(), stderr=StringIO())
    return LanguageModel.objects.get(quantization=fmt)


@pytest.fixture
def corpus(hub) -> Dataset:
    call_command("add_dataset", "data/corpus", "--name", "corpus", stdout=StringIO())
    return Dataset.objects.get()


def check(*args) -> str:
    out = StringIO()
    call_command("check_formats", *map(str, args), stdout=out)
    return out.getvalue()


def test_every_ready_format_is_checked_against_the_most_precise(corpus):
    q4, fp32, q8 = download("q4"), download("fp32"), download("q8")
    options = ("--dataset", corpus.pk, "--samples", 12, "--context-length", 24, "--batch-size", 4)
    result = json.loads(check(q4.pk, *options, "--json"))  # asked from any of its formats
    assert result["reference"]["format"] == "fp32" and result["reference"]["model_id"] == fp32.pk
    assert [(f["format"], f["model_id"]) for f in result["formats"]] == [("q8", q8.pk), ("q4", q4.pk)]
    assert result["samples"] == 12 and result["positions"] > 12
    q8_figures, q4_figures = result["formats"]
    assert 0 < q8_figures["kl"]["mean"] < q4_figures["kl"]["mean"]
    for figures in result["formats"]:
        assert figures["kl"]["median"] <= figures["kl"]["p99"] <= figures["kl"]["max"]
        assert 0 < figures["top1_agreement"] <= 1 and figures["perplexity_ratio"] > 0
    record = FormatCheck.objects.get()
    assert record.is_completed and record.result == result and record.model_ids == [fp32.pk, q8.pk, q4.pk]
    assert record.result["dataset"] == {"id": corpus.pk, "name": "corpus"}
    assert not record.scratch.exists()  # the reference's log-probabilities are gone

    table = check(q4.pk, *options)
    assert "reference fp32" in table and "KL mean" in table
    assert table.splitlines()[-1].split()[:2] == [str(q4.pk), "q4"]


def test_a_model_in_one_format_is_refused_with_what_to_do(corpus):
    fp32 = download("fp32")
    with pytest.raises(CommandError, match="ready in FP32 only: download it in another format"):
        check(fp32.pk, "--dataset", corpus.pk)
    with pytest.raises(CommandError, match="No ready dataset with this id"):
        check(fp32.pk, "--dataset", 999)
    assert not FormatCheck.objects.exists()


def test_the_admin_shows_format_checks(admin_client, corpus):
    fp32, q4 = download("fp32"), download("q4")
    record = FormatCheck.objects.create(
        model=q4, model_ids=[fp32.pk, q4.pk], dataset=corpus, status="completed"
    )
    change_url = reverse("admin:models_app_formatcheck_change", args=[record.pk])
    assert change_url in admin_client.get(reverse("admin:models_app_formatcheck_changelist")).content.decode()
    assert admin_client.get(change_url).status_code == 200
    assert admin_client.get(reverse("admin:models_app_formatcheck_add")).status_code == 403


def test_a_context_longer_than_the_model_reads_and_a_scratch_too_large_are_refused(corpus, monkeypatch):
    from models_app.forms import format_checks

    fp32, _q4 = download("fp32"), download("q4")
    longest = fp32.max_position
    with pytest.raises(CommandError, match=f"reads at most {longest} tokens at once"):
        check(fp32.pk, "--dataset", corpus.pk, "--context-length", longest + 1)
    # The tiny model's vocabulary keeps any check small: the budget is lowered to meet it.
    monkeypatch.setattr(format_checks, "MAX_SCRATCH_BYTES", 2**20)
    vocabulary = fp32.vocab_size
    with pytest.raises(CommandError, match="choose fewer samples or a shorter context"):
        check(
            fp32.pk,
            "--dataset",
            corpus.pk,
            "--samples",
            2**20 // (4 * vocabulary * 31) + 1,
            "--context-length",
            32,
        )
    check(
        fp32.pk, "--dataset", corpus.pk, "--samples", 2**20 // (4 * vocabulary * 31), "--context-length", 32
    )
    assert FormatCheck.objects.count() == 1  # the one within the budget


def test_a_private_studio_checks_only_the_owners_formats(corpus, settings, owner, other_user):
    fp32, q4 = download("fp32"), download("q4")
    LanguageModel.objects.filter(pk=fp32.pk).update(owner=other_user)
    LanguageModel.objects.filter(pk=q4.pk).update(owner=owner)
    q4.refresh_from_db()
    settings.PRIVATE = True
    assert FormatCheck.formats_of(q4) == [q4]  # the other user's FP32 is not among them
    settings.PRIVATE = False
    assert [m.pk for m in FormatCheck.formats_of(q4)] == [fp32.pk, q4.pk]
