"""Settings read from the environment fail loudly on a bad value (mistudio_site/env.py), in the
helpers themselves and when the settings module is imported, as every process of the studio
does first."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mistudio_site import env


def test_it_reads_booleans_and_fails_loudly_on_bad_ones(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes")
    assert env.env_bool("X_FLAG") is True
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(env.BadSetting, match="X_FLAG='maybe' is not a boolean"):
        env.env_bool("X_FLAG")
    monkeypatch.setenv("X_INT", "ten")
    with pytest.raises(env.BadSetting, match="not an integer"):
        env.env_int("X_INT", 1)


@pytest.mark.parametrize("value, error", [("-1", "must be 0 or more"), ("lots", "is not an integer")])
def test_it_refuses_a_bad_cache_budget(value, error, tmp_path):
    environment = {
        **os.environ,
        "MISTUDIO_WORKER_MODEL_CACHE_BYTES": value,
        "MISTUDIO_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-c", "import mistudio_site.settings"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and error in result.stderr


def test_a_bad_key_stops_the_studio_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("MISTUDIO_TOKEN_KEY", "not-a-key")
    with pytest.raises(env.BadSetting, match="MISTUDIO_TOKEN_KEY must be Fernet keys"):
        env.token_keys_from(tmp_path)
