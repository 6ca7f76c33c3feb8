"""Time to first progress: how long a job waits before its card shows progress, on workers that
have just started (cold) and on a worker that already ran an extraction of the model (warm).

    .venv/bin/python bench/first_progress.py [--delay 0] [--size tiny|small] [--rounds 1] [--studio PATH] [--keep]

What it starts (all on 127.0.0.1, in a throwaway folder removed at the end unless --keep):
- the embedded default studio's database (SQLite, migrated here) and a dataset of 256 short
  texts, added here;
- the local Hub-protocol server (tests/hubserver.py) serving tests/tinymodels.py's Llama as
  `tiny/llama`, with a real tokenizer: as it is (1.7 MB of weights), or with --size small 168M
  parameters (670 MB), a model that takes seconds to load;
- `manage.py run_studio` itself, as `make run` starts it: the web server (daphne) and the two
  Django-Q2 clusters (downloads; gpu, one worker), started afresh for each part below. --studio
  runs another checkout's run_studio (the code before a change, say) against the same database.

Each round:
1. a fresh studio; --delay s after its web server accepted connections (0: at once, the worst
   case for a cold worker; no page can queue a job earlier) the bench queues a download of
   tiny/llama in the default format (Q4), as the Download button does, then, once it is ready,
   two extractions of it one after the other (layers 0 and 1, residual and mlp, batch 16,
   context 64, the 256 texts): the first extraction is the first job of the gpu worker, the
   second finds the model the first one used;
2. a fresh studio again, the model already downloaded: an extraction queued --delay s after the
   web server is up, the first thing the gpu worker ever does.
Times run from the moment the job is queued (the row committed and the task sent) to the first
version of its row that shows progress, read every 20 ms from the database as a page's data:
a download's first bytes (and ready), an extraction's first samples done (and completed).
"loading" is a download's loading + quantizing phases (from its phase log), or the time an
extraction's row spent in "loading". "web" is how long the fresh studio's web server took to
accept connections, to show that the workers' warm-up does not hold it up.
The model kept in memory and the warm-up are measured together; MISTUDIO_WORKER_MODEL_CACHE_BYTES=0
in the environment measures the warm-up alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REPO_ID = "tiny/llama"
HOST = "127.0.0.1"
POLL = 0.02
# tiny: tests/tinymodels.py's Llama as it is (1.7 MB of weights). small: 168M parameters (670 MB
# in float32), a model whose load takes seconds, as real ones do.
SIZES = {
    "tiny": {},
    "small": {
        "hidden_size": 1024,
        "intermediate_size": 2816,
        "num_hidden_layers": 8,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "vocab_size": 32000,
    },
}
TEXTS = [
    f"Sample {i}: the residual stream at layer {i % 4} carries feature {i * 7 % 11}." for i in range(256)
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Studio:
    """`manage.py run_studio` in its own process group (its workers are forked below it)."""

    def __init__(self, studio: Path, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.started = time.monotonic()
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "run_studio", "--host", HOST, "--port", str(self.port)],
                cwd=studio,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.up_at = self._wait_for_port()
        self.listening = self.up_at - self.started

    def _wait_for_port(self, timeout: float = 120.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"run_studio exited with {self.process.returncode}")
            with socket.socket() as probe:
                if probe.connect_ex((HOST, self.port)) == 0:
                    return time.monotonic()
            time.sleep(0.02)
        raise RuntimeError("the web server did not start listening")

    def wait_until(self, since_up: float) -> None:
        time.sleep(max(self.up_at + since_up - time.monotonic(), 0))

    def stop(self) -> None:
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                return
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                continue
            if sig == signal.SIGTERM:  # whatever of the group outlived run_studio goes too
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            return


def setup_django(data_dir: Path, endpoint: str) -> None:
    """The bench reads the studio's rows, so it uses the studio's settings and database."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="mistudio_site.settings", MISTUDIO_DATA_DIR=str(data_dir), HF_ENDPOINT=endpoint
    )
    for name in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY"):
        os.environ.pop(name, None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


def build_repo(folder: Path, size: str) -> None:
    """In a child process, so that torch stays out of the process that reads the rows."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from tests.tinymodels import build_model; "
            f"build_model('llama', Path(sys.argv[1]), **{SIZES[size]!r})",
            str(folder),
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def watch(record_cls, pk: int, progressed, queued_at: float, timeout: float = 300.0) -> dict:
    """Read the job's row every POLL s until it ends: when it first showed progress, when it
    ended, and how long it was seen in "loading"."""
    first = loading_from = loading_to = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = record_cls.objects.get(pk=pk)
        now = time.monotonic() - queued_at
        if record.status == "loading" and loading_from is None:
            loading_from = now
        elif record.status != "loading" and loading_from is not None and loading_to is None:
            loading_to = now
        if first is None and progressed(record):
            first = now
        if not record.is_active:
            if record.status not in ("ready", "completed"):
                raise RuntimeError(
                    f"{record_cls.__name__} {pk} ended {record.status}: {record.error_message}"
                )
            return {
                "first": first,
                "done": now,
                "record": record,
                "loading": (loading_to - loading_from) if loading_from is not None and loading_to else None,
            }
        time.sleep(POLL)
    raise RuntimeError(f"{record_cls.__name__} {pk} did not finish within {timeout:g} s")


def download(endpoint: str) -> dict:
    from models_app.ml import hub
    from models_app.ml import quantization as quant
    from models_app.models import LanguageModel
    from models_app.services import downloads

    for old in LanguageModel.objects.all():  # the repository is downloaded afresh each round
        old.delete_with_files()
    pre = hub.preflight(REPO_ID, endpoint=endpoint)
    queued_at = time.monotonic()
    record = downloads.create_download(pre, quant.DEFAULT_FORMAT, token=None)
    result = watch(LanguageModel, record.pk, lambda r: r.bytes_downloaded > 0, queued_at)
    log = {entry["status"]: entry["at"] for entry in result["record"].phase_log or []}
    if log.get("loading") and log.get("ready"):
        from datetime import datetime

        result["loading"] = (
            datetime.fromisoformat(log["ready"]) - datetime.fromisoformat(log["loading"])
        ).total_seconds()
    result["from"] = ""
    return result


def extract(model, dataset) -> dict:
    from models_app.models import Extraction
    from models_app.services import extractions

    queued_at = time.monotonic()
    record = extractions.create(
        model=model,
        dataset=dataset,
        layers=[0, 1],
        hooks=["residual", "mlp"],
        batch_size=16,
        context_length=64,
        top_k=5,
    )
    result = watch(Extraction, record.pk, lambda r: r.samples_done > 0, queued_at)
    result["from"] = ((result["record"].metadata or {}).get("model") or {}).get("loaded_from", "")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--delay",
        type=float,
        default=0.0,
        help="seconds from a fresh studio's web server accepting connections to its first job",
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--size", choices=SIZES, default="tiny", help="the model (see SIZES)")
    parser.add_argument("--studio", type=Path, default=ROOT, help="the checkout whose run_studio runs")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway folder (logs)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mistudio-first-progress-"))
    hub = studio = None
    rows: dict[str, list[dict]] = {}
    try:
        from tests.hubserver import HubServer

        build_repo(root / "llama", args.size)
        hub = HubServer().start()
        hub.add(REPO_ID, root / "llama")
        setup_django(root / "data", hub.endpoint)
        from models_app.models import LanguageModel
        from models_app.services import datasets

        (root / "texts.txt").write_text("\n".join(TEXTS) + "\n")
        dataset = datasets.add_from_file(root / "texts.txt", "texts")
        env = {
            **os.environ,
            "HF_HOME": str(root / "hf-home"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
        }
        log = root / "studio.log"
        cache = os.environ.get("MISTUDIO_WORKER_MODEL_CACHE_BYTES", "default")
        print(
            f"studio {args.studio}, {args.size} model, delay {args.delay:g} s, model cache {cache}, in {root}",
            flush=True,
        )
        for round_ in range(args.rounds):
            studio = Studio(args.studio.resolve(), env, log)
            web = studio.listening
            studio.wait_until(args.delay)
            rows.setdefault("download, fresh studio", []).append({**download(hub.endpoint), "web": web})
            model = LanguageModel.objects.get()
            rows.setdefault("extraction, gpu worker's first job (warmed at start)", []).append(
                extract(model, dataset)
            )
            rows.setdefault("extraction, the same model again (warm)", []).append(extract(model, dataset))
            studio.stop()

            studio = Studio(args.studio.resolve(), env, log)
            web = studio.listening
            studio.wait_until(args.delay)
            rows.setdefault("extraction, fresh studio", []).append({**extract(model, dataset), "web": web})
            studio.stop()
            studio = None
            print(f"round {round_ + 1} done", flush=True)
    finally:
        if studio is not None:
            studio.stop()
        if hub is not None:
            hub.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(report(rows))
    return 0


def report(rows: dict[str, list[dict]]) -> str:
    def median(runs, key) -> str:
        values = [run[key] for run in runs if run.get(key) is not None]
        return f"{statistics.median(values):.2f}" if values else "–"

    lines = [
        "| job (queued → …) | first progress (s) | done (s) | loading (s) | model from | web server up (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in rows.items():
        sources = sorted({run["from"] for run in runs if run["from"]}) or ["–"]
        lines.append(
            f"| {name} | {median(runs, 'first')} | {median(runs, 'done')} | {median(runs, 'loading')} "
            f"| {', '.join(sources)} | {median(runs, 'web')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
