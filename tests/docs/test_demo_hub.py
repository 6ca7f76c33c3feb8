"""`make serve-hub` (tests/serve_hub.py) as a newcomer meets it: a separate process reached with
huggingface_hub, serving a gated model that opens with the documented demo token and a dataset."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import GatedRepoError

from tests.serve_hub import DEMO_TOKEN
from tests.tinydatasets import CORPUS

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def demo_hub(tmp_path_factory):
    """The demo server's endpoint, once it has printed what it serves."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.serve_hub",
            "--port",
            str(port),
            "--dir",
            str(tmp_path_factory.mktemp("demo-hub")),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(line.startswith("Gated:") for line in lines):
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
    assert any(line.startswith("Gated:") for line in lines), lines
    yield f"http://127.0.0.1:{port}", "".join(lines)
    process.terminate()
    process.wait(20)


@pytest.fixture
def endpoint(demo_hub) -> str:
    return demo_hub[0]


@pytest.mark.slow  # starts the demo hub as a process (a fresh interpreter)
def test_it_prints_the_demo_token_when_it_starts(demo_hub):
    endpoint, printed = demo_hub
    assert f"token {DEMO_TOKEN} has access" in printed
    assert "gated/llama" in printed and "data/corpus" in printed and endpoint in printed


def test_it_serves_the_gated_model_with_the_demo_token_only(endpoint, tmp_path):
    assert HfApi(endpoint=endpoint).model_info("gated/llama", token=False).gated == "manual"
    config = hf_hub_download(
        "gated/llama", "config.json", endpoint=endpoint, token=DEMO_TOKEN, cache_dir=tmp_path / "with"
    )
    assert '"llama"' in Path(config).read_text()
    with pytest.raises(GatedRepoError):
        hf_hub_download(
            "gated/llama", "config.json", endpoint=endpoint, token=False, cache_dir=tmp_path / "without"
        )


def test_it_serves_a_text_dataset(endpoint, tmp_path):
    files = HfApi(endpoint=endpoint).list_repo_files("data/corpus", repo_type="dataset", token=False)
    assert "data/train-00000-of-00001.parquet" in files
    split = hf_hub_download(
        "data/corpus",
        "data/train-00000-of-00001.parquet",
        repo_type="dataset",
        endpoint=endpoint,
        cache_dir=tmp_path,
    )
    assert pq.read_table(split).column("text").to_pylist() == CORPUS
    with pytest.raises(GatedRepoError):
        hf_hub_download(
            "data/gated-corpus",
            "data/train-00000-of-00001.parquet",
            repo_type="dataset",
            endpoint=endpoint,
            token=False,
            cache_dir=tmp_path / "without",
        )
