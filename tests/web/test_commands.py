from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from models_app.models import LanguageModel
from tests.hubserver import GOOD_TOKEN

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.slow
def test_the_commands_download_list_describe_and_delete(hub, settings):
    out = run("download_model", "tiny/gpt2", "--quantization", "q8")
    record = LanguageModel.objects.get()
    assert "Ready: gpt2 [Q8]" in out and record.status == "ready"
    listing = run("list_models")
    assert listing.splitlines()[0].startswith(f"{record.pk}\t") and "tiny/gpt2@main" in listing
    info = json.loads(run("model_info", str(record.pk)))
    assert info["params_count"] == record.params_count and "encrypted_token" not in info
    assert "Deleted gpt2; freed" in run("delete_model", str(record.pk))
    assert not LanguageModel.objects.exists()
    assert not (settings.HF_CACHE_DIR / "models--tiny--gpt2").exists()


def test_download_model_fails_with_the_pages_message(hub):
    with pytest.raises(CommandError, match="is a gated model"):
        run("download_model", "gated/llama")
    with pytest.raises(CommandError, match="single slash"):
        run("download_model", "a/b/c")
    assert not LanguageModel.objects.exists()


@pytest.mark.slow
def test_download_model_reads_the_token_from_a_named_variable(hub, monkeypatch):
    monkeypatch.setenv("MY_HF", GOOD_TOKEN)
    run("download_model", "gated/llama", "--quantization", "fp16", "--token-env", "MY_HF")
    assert LanguageModel.objects.get().status == "ready"
    with pytest.raises(CommandError, match="NOT_SET is not set"):
        run("download_model", "gated/llama", "--token-env", "NOT_SET")


@pytest.mark.slow
def test_download_model_exits_non_zero_when_the_job_fails(hub):
    repo = hub.repos["tiny/gemma2"]
    repo.drop_after_bytes, repo.drop_times = 200_000, -1
    with pytest.raises(CommandError, match="connection to the Hub was lost"):
        run("download_model", "tiny/gemma2")
    assert LanguageModel.objects.get().status == "error"


def test_model_info_and_delete_refuse_unknown_ids():
    with pytest.raises(CommandError, match="No model with id 99"):
        run("model_info", "99")
    with pytest.raises(CommandError, match="No model with id 99"):
        run("delete_model", "99")


def test_ensure_admin_creates_one_admin_once(monkeypatch, django_user_model):
    monkeypatch.delenv("MISTUDIO_ADMIN_PASSWORD", raising=False)
    out = run("ensure_admin")
    assert "Created admin user 'admin' with password:" in out
    password = out.split("password: ")[1].split()[0]
    assert django_user_model.objects.get(username="admin").check_password(password)
    assert run("ensure_admin") == ""


def test_download_model_takes_the_format_in_any_case_and_shows_defaults(hub, capsys):
    from django.core.management import get_commands, load_command_class

    run("download_model", "tiny/gpt2", "--quantization", "FP16")
    assert LanguageModel.objects.get().quantization == "fp16"
    parser = load_command_class(get_commands()["download_model"], "download_model").create_parser(
        "manage.py", "download_model"
    )
    assert "(default: q4)" in parser.format_help()
