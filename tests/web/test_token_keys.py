"""Access tokens at rest: their key is not SECRET_KEY's, and it can be rotated (reading and
generating the key: tests/configuration)."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from models_app import token_crypto
from models_app.models import LanguageModel

pytestmark = pytest.mark.django_db


def test_a_copy_with_the_same_secret_key_but_not_the_token_key_reads_nothing(settings):
    blob = token_crypto.encrypt("hf_secretvalue123")
    assert token_crypto.decrypt(blob) == "hf_secretvalue123"
    settings.TOKEN_KEYS = [Fernet.generate_key().decode()]  # same SECRET_KEY, other token key
    assert token_crypto.decrypt(blob) is None


def test_rotation_re_encrypts_stored_tokens_with_the_new_key(settings):
    old, new = settings.TOKEN_KEYS[0], Fernet.generate_key().decode()
    record = LanguageModel.objects.create(
        name="m", repo_id="o/m", encrypted_token=token_crypto.encrypt("hf_tokenvalue999")
    )
    settings.TOKEN_KEYS = [new, old]
    out = StringIO()
    call_command("rotate_token_key", stdout=out)
    assert "Re-encrypted 1 token(s)" in out.getvalue()
    settings.TOKEN_KEYS = [new]  # the old key is gone
    record.refresh_from_db()
    assert token_crypto.decrypt(record.encrypted_token) == "hf_tokenvalue999"
