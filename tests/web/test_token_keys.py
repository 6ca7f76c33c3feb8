"""Access tokens at rest: their key is not SECRET_KEY's, and it can be rotated."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from models_app import secrets
from models_app.models import LanguageModel

pytestmark = pytest.mark.django_db


def test_a_copy_with_the_same_secret_key_but_not_the_token_key_reads_nothing(settings):
    blob = secrets.encrypt("hf_secretvalue123")
    assert secrets.decrypt(blob) == "hf_secretvalue123"
    settings.TOKEN_KEYS = [Fernet.generate_key().decode()]  # same SECRET_KEY, other token key
    assert secrets.decrypt(blob) is None


def test_rotation_re_encrypts_stored_tokens_with_the_new_key(settings):
    old, new = settings.TOKEN_KEYS[0], Fernet.generate_key().decode()
    record = LanguageModel.objects.create(
        name="m", repo_id="o/m", encrypted_token=secrets.encrypt("hf_tokenvalue999")
    )
    settings.TOKEN_KEYS = [new, old]
    out = StringIO()
    call_command("rotate_token_key", stdout=out)
    assert "Re-encrypted 1 token(s)" in out.getvalue()
    settings.TOKEN_KEYS = [new]  # the old key is gone
    record.refresh_from_db()
    assert secrets.decrypt(record.encrypted_token) == "hf_tokenvalue999"


def test_a_bad_key_stops_the_studio_with_a_clear_message(tmp_path, monkeypatch):
    from mistudio_site.env import BadSetting, token_keys_from

    monkeypatch.setenv("MISTUDIO_TOKEN_KEY", "not-a-key")
    with pytest.raises(BadSetting, match="MISTUDIO_TOKEN_KEY must be Fernet keys"):
        token_keys_from(tmp_path)


def test_without_the_setting_a_private_key_is_generated_once(tmp_path, monkeypatch):
    import stat

    from mistudio_site.env import token_keys_from

    monkeypatch.delenv("MISTUDIO_TOKEN_KEY", raising=False)
    first = token_keys_from(tmp_path)
    assert token_keys_from(tmp_path) == first and len(first) == 1
    assert stat.S_IMODE((tmp_path / "token_key").stat().st_mode) == 0o600
