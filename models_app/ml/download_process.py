"""A Hub download (a model's files, or a dataset's) in a child process the job can stop at once.

huggingface_hub's Xet transfer reports progress from hf_xet's own threads, where raising an
exception cannot interrupt it; a child process can always be terminated. The child gets its
request, token included, on stdin (never its command line or environment, which other local
users can read) and reports progress as JSON lines on stdout.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import hub

ROOT = Path(__file__).resolve().parents[2]
REPORT_INTERVAL = 0.1  # seconds between progress lines from the child
STOP_GRACE = 1.0  # after SIGTERM, seconds before SIGKILL


def download_in_child(
    pre: hub.Preflight,
    cache_dir: Path,
    token: hub.HubToken = None,
    endpoint: str | None = None,
    on_progress: hub.ProgressCallback = lambda p: None,
    should_cancel: Callable[[], bool] = lambda: False,
    poll: float = 0.2,
) -> Path:
    """`hub.download` run by a child process; cancelling terminates it within `poll` seconds."""
    request = {"kind": "model", "pre": dataclasses.asdict(pre), "cache_dir": str(cache_dir)}
    _run_child(request, pre.download_bytes, token, endpoint, on_progress, should_cancel, poll)
    return hub.snapshot_dir(cache_dir, pre.repo_id, pre.commit_sha)


def download_dataset_in_child(
    repo_id: str,
    commit: str,
    files: list[hub.RepoFile],
    target: Path,
    token: hub.HubToken = None,
    endpoint: str | None = None,
    on_progress: hub.ProgressCallback = lambda p: None,
    should_cancel: Callable[[], bool] = lambda: False,
    poll: float = 0.2,
) -> list[Path]:
    """`hub.download_dataset_files` run by a child process, stopped the same way."""
    request = {
        "kind": "dataset",
        "repo_id": repo_id,
        "commit": commit,
        "target": str(target),
        "files": [dataclasses.asdict(f) for f in files],
    }
    _run_child(request, sum(f.size for f in files), token, endpoint, on_progress, should_cancel, poll)
    return [Path(target) / f.path for f in files]


def _run_child(
    request: dict,
    total: int,
    token: hub.HubToken,
    endpoint: str | None,
    on_progress: hub.ProgressCallback,
    should_cancel: Callable[[], bool],
    poll: float,
) -> None:
    # In a session of its own, the child gets none of the terminal's signals (Ctrl-C, a hang-up):
    # stopping it is its parent's business, and it exits when that parent is gone.
    child = subprocess.Popen(
        [sys.executable, "-m", "models_app.ml.download_process"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(child.stdout, lines), daemon=True)
    reader.start()
    progress = hub.DownloadProgress(total=total)
    assert child.stdin is not None  # opened with stdin=PIPE
    try:
        child.stdin.write(json.dumps({**request, "token": token, "endpoint": endpoint}) + "\n")
        child.stdin.close()
        while True:
            if should_cancel():
                raise hub.DownloadCancelled()
            try:
                line = lines.get(timeout=poll)
            except queue.Empty:  # no data: let the speed fall and the job see the stall
                progress.advance(0)
                on_progress(progress)
                continue
            if line is None:
                break
            message = json.loads(line)
            if "errno" in message:  # a disk full in the child is a disk full here
                raise OSError(message["errno"], message["error"])
            if "error" in message:
                raise hub.HubError(message["error"], field=message.get("field"))
            if "done" in message:
                progress.file = message["file"]
                progress.advance(message["done"] - progress.done)
                on_progress(progress)
        if child.wait() != 0:
            raise hub.HubError(f"The download process stopped unexpectedly (exit code {child.returncode}).")
    finally:
        _stop(child)


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        if line.strip():
            lines.put(line)
    lines.put(None)


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _exit_with_parent(parent: int) -> None:
    """A job killed with SIGKILL cannot stop its child: the child notices it was orphaned."""
    import os

    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _child() -> int:
    import os

    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    request = json.loads(sys.stdin.readline())
    last = 0.0

    def report(p: hub.DownloadProgress) -> None:
        nonlocal last
        if time.monotonic() - last >= REPORT_INTERVAL or p.done >= p.total:
            last = time.monotonic()
            _emit({"done": p.done, "file": p.file})

    access = {"token": request["token"], "endpoint": request["endpoint"], "on_progress": report}
    try:
        if request["kind"] == "dataset":
            hub.download_dataset_files(
                request["repo_id"],
                request["commit"],
                [hub.RepoFile(**f) for f in request["files"]],
                Path(request["target"]),
                **access,
            )
        else:
            fields = request["pre"]
            pre = hub.Preflight(**{**fields, "files": [hub.RepoFile(**f) for f in fields["files"]]})
            hub.download(pre, Path(request["cache_dir"]), **access)
    except hub.HubError as exc:
        _emit({"error": exc.message, "field": exc.field})
        return 1
    except OSError as exc:
        _emit({"error": exc.strerror or str(exc), "errno": exc.errno})
        return 1
    except Exception as exc:
        _emit({"error": f"Unexpected error ({type(exc).__name__}): {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_child())
