"""End to end through the Django client with htmx headers: form -> record -> job (run for real,
synchronously) -> files on disk -> card and architecture fragments."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from models_app.models import LanguageModel
from tests.helpers import HTMX
from tests.hubserver import GOOD_TOKEN
from tests.tinymodels import FAMILIES

# Slow: nearly every test downloads a model through the real job.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def post_download(client, repo_id, quantization="q4", **extra):
    data = {"repo_id": repo_id, "revision": "main", "quantization": quantization, **extra}
    return client.post(reverse("models_app:download"), data, **HTMX)


def test_it_downloads_loads_and_quantizes_a_model(owner_client, hub, settings):
    response = post_download(owner_client, "tiny/llama", "q4")
    assert response.status_code == 200
    record = LanguageModel.objects.get()
    assert f'id="model-{record.pk}"' in response.content.decode()
    assert record.status == "ready", record.error_message
    assert [p["status"] for p in record.phase_log] == [
        "queued",
        "downloading",
        "loading",
        "quantizing",
        "ready",
    ]
    assert record.params_count == _fp32_parameters(hub, "tiny/llama")
    assert record.effective_quantization == "q4" and record.quantization_note == ""
    assert record.commit_sha == hub.repos["tiny/llama"].sha
    snapshot = Path(record.file_path)
    assert (snapshot / "model.safetensors").exists() and snapshot.is_relative_to(settings.HF_CACHE_DIR)
    stored = Path(record.quantized_path)
    assert stored == settings.QUANTIZED_DIR / f"{record.pk}_q4" and (stored / "config.json").exists()
    assert record.memory_footprint_bytes > 0 and record.disk_size_bytes > 0
    assert record.architecture_config["model_type"] == "llama"
    assert record.encrypted_token is None

    card = owner_client.get(reverse("models_app:card", args=[record.pk]), **HTMX).content.decode()
    assert "427K" in card and "Q4" in card and "Ready" in card and "hx-trigger" not in card

    modal = owner_client.get(reverse("models_app:architecture", args=[record.pk]), **HTMX).content.decode()
    assert f"{record.name} Architecture" in modal
    for text in (
        "Total Layers",
        "Hidden Dimension",
        "Attention Heads",
        "TransformerBlock_1",
        "Embedding",
        "512 × 128",
        "128 → 256 → 128",
        "model.layers.{i}.mlp",
        "model.layers.{i}.self_attn",
        "Model Configuration",
        "separate weights",
    ):
        assert text in modal, text
    assert "<html" not in modal


def _fp32_parameters(hub, repo_id):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        hub.repos[repo_id].folder, dtype=torch.float32
    ).num_parameters()


def test_it_previews_size_params_and_memory(owner_client, hub):
    response = owner_client.post(
        reverse("models_app:preview"),
        {"repo_id": "tiny/gpt2", "revision": "main", "quantization": "q4"},
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    for text in (
        "gpt2",
        "Layers",
        "Hidden size",
        "Heads / KV heads",
        "Vocabulary",
        "Context length",
        "Download size",
        "Free disk",
        "FP32",
        "Q2",
    ):
        assert text in html, text
    assert LanguageModel.objects.count() == 0


@pytest.mark.parametrize(
    "repo_id, revision, token, field, message",
    [
        ("..", "main", "", "repo_id", "cannot contain &#x27;..&#x27;"),
        ("a/b/c", "main", "", "repo_id", "single slash"),
        ("has space", "main", "", "repo_id", "cannot contain spaces"),
        ("x" * 200, "main", "", "repo_id", "at most 96 characters"),
        ("org/--x", "main", "", "repo_id", "cannot contain &#x27;..&#x27; or &#x27;--&#x27;"),
        ("tiny/unknown", "main", "", "repo_id", "was not found on the Hub"),
        ("gated/llama", "main", "", "token", "is a gated model"),
        ("gated/llama", "main", "hf_not_a_real_token", "token", "rejected by the Hub (401)"),
        ("gated/llama", "main", "hf_valid_but_no_access", "token", "does not grant access"),
        ("tiny/llama", "v9-missing", "", "revision", "does not exist in tiny/llama"),
        ("tiny/bert", "main", "", "repo_id", "is not a causal language model"),
    ],
)
def test_it_reports_bad_input_next_to_the_field(owner_client, hub, repo_id, revision, token, field, message):
    response = post_download(owner_client, repo_id, revision=revision, token=token)
    html = response.content.decode()
    assert response.status_code == 200
    assert message in html
    assert f'id="error-{field}"' in html
    assert LanguageModel.objects.count() == 0
    if token:
        assert token not in html


def test_it_refuses_a_duplicate_next_to_the_repository_field(owner_client, hub):
    post_download(owner_client, "tiny/gpt2", "fp16")
    name = LanguageModel.objects.get().name
    response = post_download(owner_client, "tiny/gpt2", "fp16")
    html = response.content.decode()
    assert (
        f'<small class="field-error" id="error-repo_id">Already downloaded: tiny/gpt2@main in FP16 '
        f"is in the studio (“{name}”, ready).</small>"
    ) in html
    assert 'class="form-error"' not in html
    assert LanguageModel.objects.count() == 1
    post_download(owner_client, "tiny/gpt2", "fp32")
    assert LanguageModel.objects.count() == 2


def test_every_download_answer_clears_an_older_preview(owner_client, hub):
    oob = '<div id="preview" hx-swap-oob="innerHTML"></div>'
    refused = post_download(owner_client, "a/b/c").content.decode()
    assert 'id="error-repo_id"' in refused and refused.count(oob) == 1
    started = post_download(owner_client, "tiny/gpt2").content.decode()
    assert 'id="model-' in started and started.count(oob) == 1
    page = owner_client.get(reverse("models_app:index")).content.decode()
    assert page.count('id="preview"') == 1 and "hx-swap-oob" not in page


def test_it_uses_a_token_without_storing_or_showing_it(owner_client, hub, caplog):
    caplog.set_level("DEBUG")
    response = post_download(owner_client, "gated/llama", "fp16", token=GOOD_TOKEN)
    record = LanguageModel.objects.get()
    assert record.status == "ready", record.error_message
    assert GOOD_TOKEN not in response.content.decode()
    assert record.encrypted_token is None  # erased when the job ended
    auth = [h.get("authorization") for m, p, h in hub.requests if "gated/llama" in p]
    assert f"Bearer {GOOD_TOKEN}" in auth
    from django_q.models import Task

    for task in Task.objects.all():
        assert GOOD_TOKEN not in repr(task.args) + repr(task.kwargs) + repr(task.result)
    assert GOOD_TOKEN not in caplog.text
    page = owner_client.get(reverse("models_app:index")).content.decode()
    assert GOOD_TOKEN not in page


def test_it_uses_hf_token_from_the_environment(owner_client, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    post_download(owner_client, "gated/llama", "fp32")
    assert LanguageModel.objects.get().status == "ready"


def test_it_keeps_the_token_encrypted_while_queued(owner_client, hub, monkeypatch):
    monkeypatch.setattr("models_app.models.LanguageModel.enqueue", lambda record: None)
    post_download(owner_client, "gated/llama", "q8", token=GOOD_TOKEN)
    record = LanguageModel.objects.get()
    assert record.status == "queued"
    assert record.encrypted_token and GOOD_TOKEN.encode() not in bytes(record.encrypted_token)
    from models_app import token_crypto

    assert token_crypto.decrypt(record.encrypted_token) == GOOD_TOKEN


def test_a_failed_download_leaves_no_files(owner_client, hub, settings):
    repo = hub.repos["tiny/phi"]
    repo.drop_after_bytes, repo.drop_times = 200_000, -1
    post_download(owner_client, "tiny/phi", "fp16")
    record = LanguageModel.objects.get()
    assert record.status == "error"
    assert "connection" in record.error_message.lower()
    leftovers = [p for p in settings.MODELS_DIR.rglob("*") if p.is_file() and p.name != "CACHEDIR.TAG"]
    assert leftovers == []
    card = owner_client.get(reverse("models_app:card", args=[record.pk]), **HTMX).content.decode()
    assert record.error_message in card and "Retry" in card


def test_it_retries_and_redownloads_in_another_format(owner_client, hub, settings):
    post_download(owner_client, "tiny/qwen2", "q8")
    record = LanguageModel.objects.get()
    assert record.status == "ready" and (settings.QUANTIZED_DIR / f"{record.pk}_q8").exists()
    response = owner_client.post(
        reverse("models_app:restart", args=[record.pk]), {"quantization": "q4"}, **HTMX
    )
    assert response.status_code == 200
    record.refresh_from_db()
    assert record.status == "ready" and record.quantization == "q4" and record.effective_quantization == "q4"
    assert not (settings.QUANTIZED_DIR / f"{record.pk}_q8").exists()
    assert (settings.QUANTIZED_DIR / f"{record.pk}_q4").exists()


def test_it_redownloads_a_ready_quantized_model_in_the_same_format(owner_client, hub, settings):
    post_download(owner_client, "tiny/llama", "q4")
    record = LanguageModel.objects.get()
    copy = settings.QUANTIZED_DIR / f"{record.pk}_q4"
    first_built = (copy / "config.json").stat().st_mtime_ns
    response = owner_client.post(
        reverse("models_app:restart", args=[record.pk]), {"quantization": "q4"}, **HTMX
    )
    assert response.status_code == 200
    record.refresh_from_db()
    assert record.status == "ready", record.error_message
    assert record.effective_quantization == "q4"
    assert (copy / "config.json").stat().st_mtime_ns != first_built  # built again from the checkpoint


def test_delete_frees_the_files_no_other_model_uses(owner_client, hub, settings):
    post_download(owner_client, "tiny/gemma", "q4")
    post_download(owner_client, "tiny/gemma", "fp16")
    first, second = LanguageModel.objects.order_by("pk")
    cache = settings.HF_CACHE_DIR / "models--tiny--gemma"
    response = owner_client.post(reverse("models_app:delete", args=[first.pk]), **HTMX)
    html = response.content.decode()
    assert "Deleted gemma" in html and "freed" in html
    assert not (settings.QUANTIZED_DIR / f"{first.pk}_q4").exists()
    assert (Path(second.file_path) / "model.safetensors").exists()  # still used by the FP16 copy
    owner_client.post(reverse("models_app:delete", args=[second.pk]), **HTMX)
    assert not cache.exists()
    assert LanguageModel.objects.count() == 0


def test_it_renames_inline(owner_client, hub):
    post_download(owner_client, "tiny/gpt_neox", "fp16")
    record = LanguageModel.objects.get()
    form = owner_client.get(reverse("models_app:rename", args=[record.pk]), **HTMX).content.decode()
    assert 'name="name"' in form
    empty = owner_client.post(reverse("models_app:rename", args=[record.pk]), {"name": "  "}, **HTMX)
    assert "cannot be empty" in empty.content.decode()
    owner_client.post(reverse("models_app:rename", args=[record.pk]), {"name": "Pythia tiny"}, **HTMX)
    record.refresh_from_db()
    assert record.name == "Pythia tiny"


def test_a_gated_model_is_retried_with_a_new_token_from_the_card(owner_client, hub, monkeypatch):
    repo = hub.repos["gated/llama"]
    repo.drop_after_bytes, repo.drop_times = 200_000, -1
    post_download(owner_client, "gated/llama", "fp16", token=GOOD_TOKEN)
    record = LanguageModel.objects.get()
    assert record.status == "error" and record.gated and record.encrypted_token is None
    card = owner_client.get(reverse("models_app:card", args=[record.pk]), **HTMX).content.decode()
    assert 'name="token"' in card and GOOD_TOKEN not in card
    repo.drop_after_bytes, repo.drop_times = None, 0
    owner_client.post(
        reverse("models_app:restart", args=[record.pk]), {"quantization": "fp16", "token": GOOD_TOKEN}, **HTMX
    )
    record.refresh_from_db()
    assert record.status == "ready", record.error_message


def test_a_2bit_download_stores_its_hqq_layers(owner_client, hub, settings):
    post_download(owner_client, "tiny/gemma3_text", "q2")
    record = LanguageModel.objects.get()
    assert record.status == "ready", record.error_message
    assert record.effective_quantization == "q2"
    stored = Path(record.quantized_path)
    assert stored == settings.QUANTIZED_DIR / f"{record.pk}_q2"
    assert (stored / "hqq.json").exists() and (stored / "hqq_layers.safetensors").exists()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_downloads_and_shows_its_architecture(owner_client, hub, family):
    post_download(owner_client, f"tiny/{family}", "q4")
    record = LanguageModel.objects.get()
    assert record.status == "ready", record.error_message
    assert record.params_count == loading_count(hub, f"tiny/{family}")
    modal = owner_client.get(reverse("models_app:architecture", args=[record.pk]), **HTMX).content.decode()
    hooks = record.architecture_summary["hook_points"]
    assert hooks["mlp"].endswith(".mlp") and hooks["mlp"] in modal
    assert "TransformerBlock_1" in modal and "TransformerBlock_2" not in modal


def loading_count(hub, repo_id):
    from models_app.ml.loading import count_parameters_on_disk

    return count_parameters_on_disk(hub.repos[repo_id].folder)
