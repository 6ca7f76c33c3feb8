"""Start the web server (daphne) and the job workers (Django-Q2) as one foreground process tree.
Ctrl-C (or SIGTERM) stops them all."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run daphne and the Django-Q2 clusters (downloads, gpu) together."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("MISTUDIO_HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("MISTUDIO_PORT", "8000"))
        parser.add_argument("--no-workers", action="store_true", help="web server only")

    def handle(self, *args, **options) -> None:
        from models_app.services import fail_interrupted_jobs

        # This command owns the only workers of an embedded studio, so nothing can still be
        # running; shared (scale-out) deployments run qcluster on their own and skip this.
        interrupted = fail_interrupted_jobs() if not options["no_workers"] else 0
        if interrupted:
            self.stdout.write(self.style.WARNING(f"{interrupted} interrupted job(s) marked as failed."))
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        commands = [[python, "-m", "daphne", "-b", options["host"], "-p", str(options["port"]),
                     "mistudio_site.asgi:application"]]
        environments = [None]
        if not options["no_workers"]:
            # One cluster for downloads, one (a single worker) for GPU jobs such as extractions.
            commands += [[python, manage, "qcluster"], [python, manage, "qcluster"]]
            environments += [None, {**os.environ, "Q_CLUSTER_NAME": settings.GPU_CLUSTER}]
        children = [subprocess.Popen(cmd, cwd=settings.BASE_DIR, env=env)
                    for cmd, env in zip(commands, environments)]
        self.stdout.write(self.style.SUCCESS(
            f"MechInterp Studio on http://{options['host']}:{options['port']}/ (Ctrl-C to stop)"))

        def stop(*_args) -> None:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for child in children:
                try:
                    child.wait(max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    child.kill()

        signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            stop()
        failed = [c.returncode for c in children if c.returncode not in (0, None, -signal.SIGTERM)]
        if failed:
            sys.exit(1)
