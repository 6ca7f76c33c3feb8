"""The documented HTTPS setting passes Django's deployment checks; the default does not claim to."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.workers import ROOT

# Slow: manage.py check --deploy in fresh processes.
pytestmark = pytest.mark.slow


def check_deploy(tmp_path, **env) -> subprocess.CompletedProcess:
    # A deployment's environment, not this test session's (which sets test-only variables).
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "mistudio_site.settings",
        "MISTUDIO_DATA_DIR": str(tmp_path),
        "ALLOWED_HOSTS": "studio.example.org",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_https_on(tmp_path):
    result = check_deploy(tmp_path, MISTUDIO_HTTPS="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_it_the_checks_name_what_is_missing(tmp_path):
    result = check_deploy(tmp_path)
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stdout + result.stderr, warning
