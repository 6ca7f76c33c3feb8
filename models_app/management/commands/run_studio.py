"""Start the web server (daphne) and the job workers (Django-Q2) as one foreground process tree.
A process that dies (a worker killed for memory, say) is started again; Ctrl-C or SIGTERM stops
them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.management.base import BaseCommand

RESTART_DELAY = 2.0  # seconds before a process that died is started again
WEB_START_SECONDS = 30.0  # the workers start then even if the web server is not listening yet
LEFTOVER_SECONDS = 24 * 3600  # an upload untouched this long is no request's any more


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict | None = None
    process: subprocess.Popen | None = None
    died_at: float | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, cwd=settings.BASE_DIR, env=self.env)
        self.died_at = None


class Command(BaseCommand):
    help = "Run daphne and the Django-Q2 clusters (downloads, gpu) together."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("MISTUDIO_HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("MISTUDIO_PORT", "8000"))
        parser.add_argument("--no-workers", action="store_true", help="web server only")

    def handle(self, *args, **options) -> None:
        from models_app.jobs.lost import fail_interrupted_jobs

        # This command owns the only workers of an embedded studio, so nothing can still be
        # running; shared (scale-out) deployments run qcluster on their own and skip this.
        interrupted = fail_interrupted_jobs() if not options["no_workers"] else 0
        if interrupted:
            self.stdout.write(self.style.WARNING(f"{interrupted} interrupted job(s) marked as failed."))
        # Uploads a killed web server was receiving stay in the data directory's tmp/: at the start
        # of an embedded studio nothing else can be receiving one; other web servers may share it.
        sweep_uploads(settings.FILE_UPLOAD_TEMP_DIR, 0 if not options["no_workers"] else LEFTOVER_SECONDS)
        children = self._children(options)

        def on_sigterm(*_signal) -> None:
            _stop(children)
            sys.exit(0)

        signal.signal(signal.SIGTERM, on_sigterm)
        try:
            web, *workers = children
            web.start()
            if workers:
                # Each worker imports torch and transformers as it starts (models_app/jobs/
                # warmup.py), seconds of every core it can get: they start once the web server
                # listens, so its start is not held up. Until then no page can queue a job.
                assert web.process is not None  # started just above
                wait_until_listening(options["host"], options["port"], web.process, WEB_START_SECONDS)
            for child in workers:
                child.start()
            self.stdout.write(
                self.style.SUCCESS(
                    f"MechInterp Studio on http://{options['host']}:{options['port']}/ (Ctrl-C to stop)"
                )
            )
            while True:
                time.sleep(0.5)
                self._restart_the_dead(children)
        except KeyboardInterrupt:
            pass
        finally:
            _stop(children)

    def _children(self, options) -> list[Child]:
        python, manage = sys.executable, str(settings.BASE_DIR / "manage.py")
        # The server spools request bodies where Django spools uploads: in the data directory.
        children = [
            Child(
                "web server",
                web_server_command(options["host"], options["port"]),
                {**os.environ, "TMPDIR": str(settings.FILE_UPLOAD_TEMP_DIR)},
            )
        ]
        if not options["no_workers"]:
            # One cluster for downloads, one (a single worker) for GPU jobs such as extractions.
            children += [
                Child("downloads workers", [python, manage, "qcluster"]),
                Child(
                    "gpu workers",
                    [python, manage, "qcluster"],
                    {**os.environ, "Q_CLUSTER_NAME": settings.GPU_CLUSTER},
                ),
            ]
        return children

    def _restart_the_dead(self, children: list[Child]) -> None:
        """A job that was running in a dead cluster is failed by the lost-worker check; the
        cluster itself comes back so queued jobs still run."""
        now = time.monotonic()
        for child in children:
            code = child.process.poll() if child.process is not None else None
            if code is None:
                continue
            if child.died_at is None:
                child.died_at = now
                self.stderr.write(f"The {child.name} stopped (exit code {code}); starting it again.")
            elif now - child.died_at >= RESTART_DELAY:
                child.start()


def sweep_uploads(folder, older_than: float) -> None:
    """Remove what is in `folder` (uploads being received) untouched for `older_than` seconds."""
    import shutil

    cutoff = time.time() - older_than
    for entry in folder.iterdir():
        try:
            if entry.lstat().st_mtime > cutoff:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            continue  # gone meanwhile


def wait_until_listening(host: str, port: int | str, process: subprocess.Popen, timeout: float) -> bool:
    """Whether the server `process` accepts connections on (host, port) within `timeout` s."""
    import socket

    address = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(
        host, host.strip("[]")
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection((address, int(port)), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def web_server_command(host: str, port: int | str) -> list[str]:
    """daphne, with request bodies judged before they are read (mistudio_site/server.py)."""
    return [
        sys.executable,
        "-m",
        "mistudio_site.server",
        "-b",
        host,
        "-p",
        str(port),
        "mistudio_site.asgi:application",
    ]


def _stop(children: list[Child]) -> None:
    for child in children:
        if child.process is not None and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.process.kill()
