"""Serve tiny random models of every supported family, a gated model and a small text dataset
over the Hub protocol, for demos:

    .venv/bin/python -m tests.serve_hub --port 8900
    HF_ENDPOINT=http://127.0.0.1:8900 make run      # then download e.g. tiny/llama

gated/llama (and the dataset data/gated-corpus) answer only the token DEMO_TOKEN;
NO_ACCESS_TOKEN is a valid token without access, to see how the studio tells the two apart.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .hubserver import NO_ACCESS_TOKEN, HubServer
from .tinydatasets import build_corpus
from .tinymodels import FAMILIES, build_model

# Not a secret: it opens the demo's gated repositories and nothing else.
DEMO_TOKEN = "hf_demo_token"


def add_repositories(server: HubServer, root: Path, slow: int | None = None) -> None:
    """Build what is missing under `root` (kept between runs with --dir) and serve it."""
    for family in FAMILIES:
        folder = root / family
        if not (folder / "config.json").exists():
            build_model(family, folder)
        server.add(f"tiny/{family}", folder, bytes_per_second=slow)
    server.add("gated/llama", root / "llama", gated=True, bytes_per_second=slow)
    corpus = root / "datasets" / "corpus"
    if not (corpus / "README.md").exists():
        build_corpus(corpus)
    server.add("data/corpus", corpus, repo_type="dataset", bytes_per_second=slow)
    server.add("data/gated-corpus", corpus, repo_type="dataset", gated=True, bytes_per_second=slow)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--dir", type=Path, default=None, help="where to build the models")
    parser.add_argument("--slow", type=int, default=0, help="throttle weights to N bytes/s")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="mistudio-hub-"))
    server = HubServer(port=args.port, good_tokens=(DEMO_TOKEN,))
    add_repositories(server, root, args.slow or None)
    server.start()
    models = [r.repo_id for r in server.repos.values() if r.repo_type == "model"]
    print(f"Serving {', '.join(models)} on {server.endpoint}", flush=True)
    print("Datasets: data/corpus and data/gated-corpus (text field 'text')", flush=True)
    print(
        f"Gated: gated/llama and data/gated-corpus; token {DEMO_TOKEN} has access, "
        f"{NO_ACCESS_TOKEN} is valid without access",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
