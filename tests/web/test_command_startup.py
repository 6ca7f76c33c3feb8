"""Commands that list or print records start without the ML stack: torch and transformers (and
what quantizes with them) are imported by the jobs that load a model, never by a command that
only reads the database. Each check runs a fresh interpreter, as a terminal does."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from models_app.models import LanguageModel
from templates_app.models import ExtractionTemplate
from tests.workers import ROOT, studio_env

# Slow: fresh interpreters run every command with -X importtime.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ML_STACK = {"torch", "transformers", "accelerate", "bitsandbytes", "hqq"}


def imported_by(settings, hub, *args: str) -> set[str]:
    """The top-level packages that `python -X importtime <args>` imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=ROOT,
        env=studio_env(settings, hub.endpoint),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }


def test_it_lists_and_prints_records_without_importing_the_ml_stack(hub, settings):
    call_command(
        "download_model", "tiny/gpt2", "--quantization", "fp16", stdout=StringIO(), stderr=StringIO()
    )
    call_command("add_dataset", "data/corpus", "--name", "corpus", stdout=StringIO())
    ExtractionTemplate.objects.create(name="baseline", layer_indices=[0, 1], hook_types=["residual"])
    model = LanguageModel.objects.get()
    assert model.status == "ready"
    for command in (
        ["list_models"],
        ["model_info", str(model.pk)],
        ["list_datasets"],
        ["export_templates", "-"],
    ):
        assert imported_by(settings, hub, "manage.py", *command) & ML_STACK == set(), command


def test_it_shows_every_commands_help_without_importing_the_ml_stack(hub, settings):
    code = (
        "import sys, django\n"
        "django.setup()\n"
        "from django.core.management import get_commands, load_command_class\n"
        "for name, app in get_commands().items():\n"
        "    if app in ('models_app', 'templates_app'):\n"
        "        load_command_class(app, name).create_parser('manage.py', name).format_help()\n"
    )
    assert imported_by(settings, hub, "-c", code) & ML_STACK == set()
