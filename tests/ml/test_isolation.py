"""models_app.ml runs without Django; the web process never imports torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Slow: fresh interpreters that import the ML stack.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_imports_the_ml_library_without_django_settings():
    code = (
        "import sys\n"
        "from models_app.ml import hub, quantization, loading, architecture, hooks, storage, resident\n"
        "from models_app.ml import compare, exports\n"
        "assert 'django.conf' not in sys.modules or not __import__('django.conf').conf.settings.configured\n"
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules), "
        "[m for m in sys.modules if m.startswith('django')]\n"
        "print('ok')"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_web_process_does_not_import_torch():
    code = (
        "import django, sys\n"
        "django.setup()\n"
        "from django.test import Client\n"
        "import mistudio_site.urls, models_app.views.models, models_app.views.datasets, "
        "models_app.views.extractions, models_app.views.history, models_app.services.examples, "
        "models_app.charts, models_app.forms.downloads, models_app.consumers, models_app.admin, "
        "templates_app.views, templates_app.admin\n"
        "from django.urls import reverse\n"
        "Client().get(reverse('models_app:index'))\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    result = run_python(code, DJANGO_SETTINGS_MODULE="tests.settings")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False"
