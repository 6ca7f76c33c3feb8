from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from templates_app.models import ExtractionTemplate
from tests.templates_app.original_export import ORIGINAL_EXPORT

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_export_writes_all_or_the_named_templates(tmp_path, make_template):
    a, _b, c = make_template("a"), make_template("b"), make_template("c")
    out, _ = run("export_templates", str(tmp_path / "all.json"))
    assert out.strip() == f"Exported 3 templates to {tmp_path / 'all.json'}."
    assert [t["name"] for t in json.loads((tmp_path / "all.json").read_text())["templates"]] == [
        "a",
        "b",
        "c",
    ]
    run("export_templates", str(tmp_path / "some.json"), "--ids", f"{a.pk},{c.pk}")
    assert [t["name"] for t in json.loads((tmp_path / "some.json").read_text())["templates"]] == ["a", "c"]


def test_export_to_stdout_prints_only_json(make_template):
    make_template("a")
    out, err = run("export_templates", "-")
    assert json.loads(out)["count"] == 1 and err.strip() == "Exported 1 template."


def test_export_refuses_unknown_or_malformed_ids(tmp_path, make_template):
    a = make_template("a")
    with pytest.raises(CommandError, match="No template with id 998, 999"):
        run("export_templates", str(tmp_path / "x.json"), "--ids", f"{a.pk},999,998")
    with pytest.raises(CommandError, match="like 1,2,3"):
        run("export_templates", str(tmp_path / "x.json"), "--ids", "1,two")
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    "policy, count, batch, line",
    [
        ("skip", 2, 4, "Skipped: template 2 ('MLP probe'): a template with this name exists"),
        ("overwrite", 2, 8, "Updated: template 2 ('MLP probe')"),
        ("rename", 3, 4, "Created: template 2 ('MLP probe (2)'): renamed from 'MLP probe'"),
    ],
)
def test_import_applies_the_policy_and_prints_the_summary(
    tmp_path, make_template, policy, count, batch, line
):
    make_template("MLP probe", batch_size=4)
    path = tmp_path / "in.json"
    path.write_text(json.dumps(ORIGINAL_EXPORT))
    out, _ = run("import_templates", str(path), "--on-duplicate", policy)
    assert line in out.splitlines() and "Created: template 1 ('Residual sweep')" in out
    assert ExtractionTemplate.objects.count() == count
    assert ExtractionTemplate.objects.get(name="MLP probe").batch_size == batch


def test_a_refused_file_prints_each_problem_and_exits_non_zero(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            {
                "version": "1.0",
                "templates": [
                    {"name": "a", "layer_indices": [0], "hook_types": ["mlp"]},
                    {
                        "name": "b",
                        "layer_indices": [0],
                        "hook_types": ["mlp"],
                        "batch_size": 1000,
                        "extra": 1,
                    },
                ],
            }
        )
    )
    err = StringIO()
    with pytest.raises(CommandError, match=r"Refused .*bad\.json: 2 problems; nothing was imported\."):
        call_command("import_templates", str(path), stdout=StringIO(), stderr=err)
    assert err.getvalue().splitlines() == [
        "template 2 ('b'): unknown field 'extra'",
        "template 2 ('b'): batch_size: must be between 1 and 512",
    ]
    assert not ExtractionTemplate.objects.exists()


@pytest.mark.slow
def test_import_exits_non_zero_from_the_shell(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"version": "1.0", "templates": [')
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "manage.py", "import_templates", str(path)],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
    )
    assert result.returncode != 0
    assert "The file is not valid JSON: Expecting value at line 1, column 34." in result.stderr


def test_import_refuses_a_missing_or_oversized_file(tmp_path, monkeypatch):
    with pytest.raises(CommandError, match=r"Could not read .*nope\.json: No such file or directory"):
        run("import_templates", str(tmp_path / "nope.json"))
    monkeypatch.setattr("templates_app.management.commands.import_templates.MAX_IMPORT_BYTES", 10)
    (tmp_path / "big.json").write_text(json.dumps(ORIGINAL_EXPORT))
    with pytest.raises(CommandError, match="templates are imported from files of at most"):
        run("import_templates", str(tmp_path / "big.json"))
