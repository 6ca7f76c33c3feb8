"""Keys the studio generates when the environment names none: SECRET_KEY and the key for access
tokens at rest are made once, kept private in the data directory from their first byte, and one
key serves every process that starts together (the web process and the workers)."""

from __future__ import annotations

import stat
import subprocess
import sys

from mistudio_site import env
from tests.workers import ROOT


def test_it_keeps_a_generated_secret_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = env.secret_key_from(tmp_path)
    assert len(first) >= 40 and env.secret_key_from(tmp_path) == first
    assert oct((tmp_path / "secret_key").stat().st_mode)[-3:] == "600"
    monkeypatch.setenv("SECRET_KEY", "from-env")
    assert env.secret_key_from(tmp_path) == "from-env"


def test_processes_starting_together_share_one_private_key(tmp_path):
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); from pathlib import Path; "
        f"from mistudio_site.env import secret_key_from; print(secret_key_from(Path({str(tmp_path)!r})))"
    )
    environment = {"PATH": "/usr/bin:/bin"}
    processes = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=environment)
        for _ in range(8)
    ]
    keys = {p.communicate(timeout=60)[0].strip() for p in processes}
    assert len(keys) == 1 and len(next(iter(keys))) >= 50
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]  # no partial file left


def test_without_the_setting_a_private_token_key_is_generated_once(tmp_path, monkeypatch):
    monkeypatch.delenv("MISTUDIO_TOKEN_KEY", raising=False)
    first = env.token_keys_from(tmp_path)
    assert env.token_keys_from(tmp_path) == first and len(first) == 1
    assert stat.S_IMODE((tmp_path / "token_key").stat().st_mode) == 0o600
