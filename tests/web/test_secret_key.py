"""The generated secret key: private from its first byte, and one key for processes that start
together (the web process and the workers)."""

from __future__ import annotations

import stat
import subprocess
import sys

from tests.workers import ROOT


def test_processes_starting_together_share_one_private_key(tmp_path):
    code = (
        "import sys; sys.path.insert(0, %r); from pathlib import Path; "
        "from mistudio_site.env import secret_key_from; print(secret_key_from(Path(%r)))"
    ) % (str(ROOT), str(tmp_path))
    env = {"PATH": "/usr/bin:/bin"}
    processes = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(8)
    ]
    keys = {p.communicate(timeout=60)[0].strip() for p in processes}
    assert len(keys) == 1 and len(next(iter(keys))) >= 50
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]  # no partial file left
