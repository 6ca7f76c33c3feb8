"""The documentation's examples, run as a reader runs them: the ```shell and ```python blocks of
README.md and docs/*.md, in reading order (the order of the README's map: the command line makes
the model and dataset the API's notebook starts from), against `manage.py run_studio` with its
workers and the test Hub server (which serves what `make serve-hub` does: tiny/llama, data/corpus).

The examples write the demo setup's addresses and a token placeholder; these, and nothing else,
are replaced: http://127.0.0.1:8900 (the demo hub) by the test Hub's address,
http://127.0.0.1:8000 (`make run`) by the studio's, and `mist_…` by a token made for the test.
Shell blocks run in the studio's environment (its data directory and database), as a terminal
beside `make run` in the repository does."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from models_app.models import ApiToken, Extraction
from tests.workers import ROOT, start_studio, stop, studio_env

# A new studio: the documented commands name the ids a first model and dataset get.
# Slow: starts a studio (run_studio) and a demo hub, then runs every example against them.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, reset_sequences=True)]

DEMO_HUB, DEMO_STUDIO, TOKEN = "http://127.0.0.1:8900", "http://127.0.0.1:8000", "mist_…"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)

# Reading order; every guide in docs/ must be named here, so none is left out unread.
DOCUMENTS = [
    "README.md",
    "docs/using.md",
    "docs/command-line.md",
    "docs/api.md",
    "docs/operating.md",
    "docs/ARCHITECTURE.md",
]
# Where each example lives, in the order they run: a block that goes missing fails the test.
EXAMPLES = [
    ("docs/command-line.md", "shell"),
    ("docs/command-line.md", "shell"),
    ("docs/command-line.md", "shell"),
    ("docs/api.md", "python"),
]


def example_blocks() -> list[tuple[str, str, str]]:
    """(document, language, code) of every shell and python block, in reading order."""
    guides = {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")}
    assert guides <= set(DOCUMENTS), f"guides missing from DOCUMENTS: {sorted(guides - set(DOCUMENTS))}"
    return [
        (document, lang, code)
        for document in DOCUMENTS
        for lang, code in FENCE.findall((ROOT / document).read_text())
        if lang in ("shell", "python")
    ]


def substitute(code: str, hub: str, studio: str, token: str) -> str:
    code = code.replace(DEMO_HUB, hub).replace(DEMO_STUDIO, studio).replace(TOKEN, token)
    for placeholder in (DEMO_HUB, DEMO_STUDIO, TOKEN, "127.0.0.1:8000", "127.0.0.1:8900"):
        assert placeholder not in code, f"{placeholder} left in an example"
    return code


def run_block(lang: str, code: str, env: dict[str, str]) -> str:
    command = ["bash", "-e", "-c", code] if lang == "shell" else [sys.executable, "-c", code]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{lang} block failed:\n{code}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


# Each check holds the output to what the block's comments say it prints, and the comments to it.
def check_shell_output(code: str, printed: str) -> None:
    for said in ("Model 1: tiny/llama@main", "Dataset 1: corpus, 40 samples"):
        assert f"# {said}" in code and said in printed, said
    listed = [line.split("\t") for line in printed.splitlines() if line.startswith("1\t")]
    assert listed and listed[0][:5] == ["1", "llama", "tiny/llama@main", "FP16", "ready"], printed
    assert "# 1  llama  tiny/llama@main  FP16  ready …" in code
    assert "Completed: 40 samples" in printed


def check_comparison_output(code: str, printed: str) -> None:
    for said in ("Model 2: tiny/llama@main", "Model 3: tiny/llama@main"):
        assert f"# {said}" in code and said in printed, said
    assert '# {"base": 1, "others": [{"id": 2, "format": "q8", ...' in code
    result = json.loads(printed[printed.index("{") :])
    assert result["base"] == 1 and [(o["id"], o["format"]) for o in result["others"]] == [
        (2, "q8"),
        (3, "q4"),
    ]
    for q8, q4 in zip(result["others"][0]["hooks"], result["others"][1]["hooks"], strict=True):
        assert 0 < q8["relative_error"] < q4["relative_error"], (q8, q4)


def check_format_check_output(code: str, printed: str) -> None:
    assert "# reference fp16 (model 1) …" in code and "reference fp16 (model 1)" in printed, printed
    rows = [line.split() for line in printed.splitlines() if re.match(r"\s+[23] ", line)]
    assert [row[:2] for row in rows] == [["2", "q8"], ["3", "q4"]], printed
    assert 0 < float(rows[0][2]) < float(rows[1][2]), printed  # the KL mean grows as the format narrows


def check_python_output(code: str, printed: str) -> None:
    lines = re.split(r"[\r\n]", printed)
    assert "completed " in lines and "# completed" in code, printed  # the status, an empty error message
    record = Extraction.objects.latest("pk")
    assert record.status == "completed" and record.layers == [0, 1]
    stats = record.statistics["layer_1_mlp"]
    shape = next(m for m in (re.fullmatch(r"(\S+) \((\d+), (\d+)\)", line) for line in lines) if m)
    assert "# e.g. 0.00631 (1394, 128)" in code  # mean |x| of the last layer's MLP, real tokens × hidden
    assert float(shape[1]) == stats["mean_abs"] and int(shape[2]) == stats["tokens"] and shape[3] == "128"
    values = [float(line.split(" ", 1)[0]) for line in lines if re.match(r"-?\d+\.\d{3} \S", line)]
    assert len(values) == record.top_k == 10 and values == sorted(values, reverse=True)


@pytest.mark.timeout(900)
def test_it_runs_the_documented_examples_as_written(settings, hub, django_user_model):
    reader = django_user_model.objects.create_user("reader", password="pw-reader-123")
    _record, token = ApiToken.issue(reader, "README")
    blocks = example_blocks()
    assert [(document, lang) for document, lang, _ in blocks] == EXAMPLES
    process, url = start_studio(settings, hub.endpoint)
    ran = 0
    try:
        env = studio_env(settings, hub.endpoint)
        checks = [check_shell_output, check_comparison_output, check_format_check_output, check_python_output]
        for (_document, lang, code), check in zip(blocks, checks, strict=True):
            printed = run_block(lang, substitute(code, hub.endpoint, url, token), env)
            check(code, printed)
            ran += 1
    finally:
        stop(process)
    assert ran == len(EXAMPLES) == 4
