"""Serve tiny random models of every supported family over the Hub protocol, for demos:

    .venv/bin/python -m tests.serve_hub --port 8900
    HF_ENDPOINT=http://127.0.0.1:8900 make run      # then download e.g. tiny/llama
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .hubserver import HubServer
from .tinymodels import FAMILIES, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--dir", type=Path, default=None, help="where to build the models")
    parser.add_argument("--slow", type=int, default=0, help="throttle weights to N bytes/s")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="mistudio-hub-"))
    server = HubServer(port=args.port)
    for family in FAMILIES:
        folder = root / family
        if not (folder / "config.json").exists():
            build_model(family, folder)
        server.add(f"tiny/{family}", folder, bytes_per_second=args.slow or None)
    server.start()
    print(f"Serving {', '.join('tiny/' + f for f in FAMILIES)} on {server.endpoint}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
