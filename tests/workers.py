"""Real studio processes for tests (Django-Q2 workers, the web server, run_studio itself), sharing
the test database and storage."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def studio_env(settings, hf_endpoint: str, **extra: str) -> dict[str, str]:
    """The environment of a studio process (worker, web server, command) sharing this test's
    database, storage and secret key (tasks and sessions are signed with it)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "MISTUDIO_Q_SYNC": "0",
        "MISTUDIO_TEST_DB": str(settings.DATABASES["default"]["NAME"]),
        "MISTUDIO_DATA_DIR": str(settings.MODELS_DIR.parent),
        "HF_ENDPOINT": hf_endpoint,
        "SECRET_KEY": settings.SECRET_KEY,
        "MISTUDIO_HEARTBEAT_SECONDS": str(settings.JOB_HEARTBEAT_SECONDS),
        "MISTUDIO_STALE_SECONDS": str(settings.JOB_STALE_SECONDS),
        **extra,
    }


def start_qcluster(
    settings, hf_endpoint: str, cluster: str | None = None, log: Path | None = None, **extra_env: str
) -> subprocess.Popen:
    """A qcluster on the ORM broker of the test database (`cluster`: an ALT_CLUSTERS name),
    its output written to `log` when given."""
    env = studio_env(settings, hf_endpoint, **({"Q_CLUSTER_NAME": cluster} if cluster else {}), **extra_env)
    # The log is closed here once the child has started: the child has its own copy.
    with open(log, "wb") if log else nullcontext(subprocess.DEVNULL) as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        )


def start_daphne(settings, hf_endpoint: str, port: int = 0) -> tuple[subprocess.Popen, str]:
    """The studio's real ASGI server (HTTP and websockets) on `port` (a free one by default);
    returns the process and its URL."""
    import socket

    if not port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    from models_app.management.commands.run_studio import web_server_command

    process = subprocess.Popen(
        web_server_command("127.0.0.1", port),
        cwd=ROOT,
        env=studio_env(settings, hf_endpoint),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_for_port(port, process)
    return process, url


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("the server did not start listening")


def kill_the_job(record) -> float:
    """SIGKILL the worker process that runs the job (its host:pid is on the record); when."""
    import signal
    import time

    os.kill(int(record.worker.rsplit(":", 1)[1]), signal.SIGKILL)
    return time.monotonic()


def cancel_running_jobs() -> None:
    """Ask every job still queued or running to stop, as its Cancel button does: called before a
    test stops its workers, whose graceful stop would otherwise wait for those jobs to end."""
    from models_app.models import JOB_KINDS

    for kind in JOB_KINDS.values():
        for record in kind.objects.filter(status__in=kind.ACTIVE):
            record.request_cancel()


def stop(*processes: subprocess.Popen) -> None:
    """Ask each process to stop, then kill what has not within 20 s."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def start_studio(settings, hf_endpoint: str, *options: str, **env: str) -> tuple[subprocess.Popen, str]:
    """`manage.py run_studio` itself (web server, and workers unless `--no-workers`) on a free
    port, with `env` added to the studio's environment; returns the process and its URL."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_studio", "--port", str(port), *options],
        cwd=ROOT,
        env=studio_env(settings, hf_endpoint, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_for_port(port, process)
    return process, f"http://127.0.0.1:{port}"


def first_line(sock) -> str:
    """The first line a server answers on `sock` (its status line), read to its end."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n")[0].decode()


class Studio:
    """A running `run_studio` (see start_studio), reached as a client would: raw sockets, or
    a `requests` session signed in through the login form."""

    def __init__(self, process: subprocess.Popen, url: str, spool: Path | None = None):
        self.process, self.url, self.spool = process, url, spool
        self.port = int(url.rsplit(":", 1)[1])

    def web_server(self):
        import psutil

        children = psutil.Process(self.process.pid).children()
        return next(c for c in children if "mistudio_site.server" in " ".join(c.cmdline()))

    def peak_memory(self) -> int:
        """The web server's peak resident memory so far, in bytes (VmHWM)."""
        import re

        status = Path(f"/proc/{self.web_server().pid}/status").read_text()
        peak = re.search(r"VmHWM:\s+(\d+) kB", status)
        assert peak, "no VmHWM in /proc status"
        return int(peak.group(1)) * 1024

    def spooled(self) -> int:
        """Bytes the web server holds in files under its TMPDIR (`spool`) right now."""
        total = 0
        for fd in Path(f"/proc/{self.web_server().pid}/fd").iterdir():
            try:
                if os.readlink(fd).startswith(str(self.spool)):
                    total += os.stat(fd).st_size
            except OSError:
                continue  # closed meanwhile
        return total

    def connect(self, head: str, cookie: str = ""):
        """A socket that has sent `head` (request line and headers) and a Host header."""
        import socket

        sock = socket.create_connection(("127.0.0.1", self.port))
        lines = [head, "Host: 127.0.0.1", *([f"Cookie: {cookie}"] if cookie else [])]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return sock

    def sign_in(self, username: str, password: str):
        import requests

        browser = requests.Session()
        browser.get(f"{self.url}/login/")
        signed_in = browser.post(
            f"{self.url}/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
            headers={"Referer": f"{self.url}/login/"},
        )
        assert signed_in.url == f"{self.url}/", signed_in.text[:2000]
        return browser

    def upload(self, browser, filename: str, content: bytes, text_field: str = "text"):
        return browser.post(
            f"{self.url}/datasets/upload/",
            files={"file": (filename, content)},
            data={
                "name": Path(filename).stem,
                "text_field": text_field,
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
            headers={"Referer": f"{self.url}/datasets/"},
        )


def start_clusters(settings, endpoint: str, monkeypatch) -> list[subprocess.Popen]:
    """The downloads and gpu clusters, as run_studio starts them, on the test database; jobs
    queued meanwhile go to them instead of running in the test's own process."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    return [
        start_qcluster(settings, endpoint),
        start_qcluster(settings, endpoint, cluster=settings.GPU_CLUSTER),
    ]
