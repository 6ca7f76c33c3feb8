from __future__ import annotations

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


def test_it_keeps_a_generated_secret_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = env.secret_key_from(tmp_path)
    assert len(first) >= 40 and env.secret_key_from(tmp_path) == first
    assert oct((tmp_path / "secret_key").stat().st_mode)[-3:] == "600"
    monkeypatch.setenv("SECRET_KEY", "from-env")
    assert env.secret_key_from(tmp_path) == "from-env"
