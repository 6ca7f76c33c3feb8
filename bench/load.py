"""Live pages under load: many open pages, page views, and a real download job, on one machine.

What it starts (all on 127.0.0.1, in a throwaway folder removed at the end):
- the embedded default studio: SQLite (migrated here), the in-memory channel layer, daphne
  (`python -m daphne ... mistudio_site.asgi:application`) and one `manage.py qcluster` for the
  downloads queue, with no REDIS_URL / DATABASE_URL;
- the local Hub-protocol server (tests/hubserver.py) serving tests/tinymodels.py's tiny Llama as
  `tiny/llama`, its weight file throttled so the download is still running when the measurement
  ends (the throttle is set from the bytes left once the clients are connected).

What it does: signs in (GET /login/ for the CSRF token, POST /login/) for a session cookie,
starts a download of tiny/llama with the form's htmx POST /models/download/, waits until the job
is writing download progress, opens --clients websockets to /ws/live/ with that session cookie
and an allowed Origin, then for --seconds sends --rps GET / (the Models page) per second, on a
fixed schedule (open loop: a slow answer does not delay the next request).

What it measures:
- page latency: from the moment a request was due on the schedule to the last byte of the
  answer, so time spent waiting to be sent counts too; an answer other than 200, or without
  the model's card, a timeout (--timeout) or a connection error is an error;
- websocket errors: a client that fails to connect, or whose socket closes before the bench
  closes it;
- update delay, per client, for each model-card fragment (`id="model-<pk>"`) that arrives during
  the measurement: arrival time at the client minus the time the job wrote the row version that
  the fragment shows. The fragment carries no timestamp, so the bench reads the job's row every
  50 ms (the tracker writes a download's row at most every 250 ms, so no version is missed),
  keeps each version's `updated_at` (stamped by the worker just before its UPDATE) and renders
  that version's card with the studio's own card renderer (consumers._model_card). A fragment is
  matched to a version by what the user sees: status, phase text, progress-bar width and the
  bytes / speed / ETA line (the width alone changes every 0.1%, about 2 KB of this download).
  A fragment that shows the same thing as the client's previous one changes nothing on the page
  and is counted but not timed; otherwise it is matched to the earliest version showing that
  content, so the delay runs from the write that first produced what the page now shows. Both
  clocks are this machine's wall clock (the worker's `timezone.now()`, the bench's time.time()).
  Arrival times are taken in the bench's event loop, so they include the bench's own scheduling
  on the shared cores. A fragment that matches no version is reported as unmatched.

The result is printed as a Markdown table; the exit status is 1 when any error occurred (HTTP,
websocket, a client that received no update, the job failing, an unmatched fragment).

    .venv/bin/python bench/load.py [--seconds 30] [--clients 50] [--rps 20] [--json out.json]

Needs `websockets` (bench/requirements.txt; `make bench` installs it).
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REPO_ID = "tiny/llama"
USERNAME, PASSWORD = "bench", "bench-password-123"
SETUP_BYTES_PER_SECOND = 16_000  # while the servers start and the clients connect
TAIL_SECONDS = 10  # the download goes on this long after the measurement
POLL_INTERVAL = 0.05  # the bench's reads of the job row
HOST = "127.0.0.1"


# -- the studio's processes ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the web server exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("the web server did not start listening")


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process in its own group, so that stopping it also stops the workers it forks."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop(processes: list[subprocess.Popen], grace: float = 15.0) -> None:
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            pass
        _signal_group(process, signal.SIGKILL)  # what is left of the group: forked workers
        process.wait()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def setup_django(data_dir: Path) -> None:
    """This process reads the same database as the studio (the row poller), so it uses the same
    settings: the embedded default with MISTUDIO_DATA_DIR set to the throwaway folder."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "mistudio_site.settings"
    os.environ["MISTUDIO_DATA_DIR"] = str(data_dir)
    for name in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY"):
        os.environ.pop(name, None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user(USERNAME, password=PASSWORD)


def build_repo(folder: Path) -> None:
    """In a child process, so that torch stays out of the process that times the clients."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from tests.tinymodels import build_model; build_model('llama', Path(sys.argv[1]))",
            str(folder),
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# -- HTTP: sign in, start the download -------------------------------------------------------------


class Browser:
    """urllib with a cookie jar and no proxies (everything here is on 127.0.0.1)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.jar)
        )

    def cookie(self, name: str) -> str:
        for cookie in self.jar:
            if cookie.name == name:
                return cookie.value
        raise RuntimeError(f"no {name} cookie")

    def request(self, path: str, data: dict | None = None, headers: dict | None = None) -> tuple[int, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, headers=headers or {})
        try:
            with self.opener.open(req, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def login(self) -> None:
        status, page = self.request("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if status != 200 or token is None:
            raise RuntimeError(f"GET /login/ answered {status} without a CSRF token")
        status, _ = self.request(
            "/login/",
            {"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token[1], "next": ""},
        )
        if status != 200:
            raise RuntimeError(f"signing in answered {status}")
        self.cookie("sessionid")

    def htmx_post(self, path: str, data: dict) -> tuple[int, str]:
        return self.request(
            path,
            data,
            {"HX-Request": "true", "X-CSRFToken": self.cookie("csrftoken"), "Referer": self.base + "/"},
        )


def start_download(browser: Browser) -> int:
    from models_app.ml import quantization as quant
    from models_app.models import LanguageModel

    status, html = browser.htmx_post(
        "/models/download/", {"repo_id": REPO_ID, "revision": "main", "quantization": quant.DEFAULT_FORMAT}
    )
    found = re.search(r'id="model-(\d+)"', html)
    if status != 200 or found is None:
        raise RuntimeError(f"POST /models/download/ answered {status}: {html[:300]}")
    pk = int(found[1])
    LanguageModel.objects.get(pk=pk)
    return pk


def wait_until_downloading(pk: int, timeout: float = 120.0):
    from models_app.models import LanguageModel, ModelStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = LanguageModel.objects.get(pk=pk)
        if record.status == ModelStatus.DOWNLOADING and record.bytes_downloaded:
            return record
        if not record.is_active:
            raise RuntimeError(
                f"the download ended before the measurement: {record.status} {record.error_message}"
            )
        time.sleep(0.2)
    raise RuntimeError("the download job did not start writing progress")


# -- what a fragment shows -------------------------------------------------------------------------

_SHOWN = [
    re.compile(r'class="card status-([\w-]+)"'),
    re.compile(r'<div class="progress-text[^"]*">(.*?)</div>', re.S),
    re.compile(r'<progress class="progress" max="100" value="([^"]*)"'),
    re.compile(r'<div class="progress-meta[^"]*">(.*?)</div>', re.S),
]


def shown(html: str, pk: int) -> tuple | None:
    """What the model card in `html` shows of the job: its status, phase text, bar and byte line."""
    start = html.find(f'id="model-{pk}"')
    if start < 0:
        return None
    end = html.find("</article>", start)
    card = html[start : end if end > 0 else len(html)]
    return tuple(" ".join(m[1].split()) if (m := pattern.search(card)) else None for pattern in _SHOWN)


@dataclass
class Version:
    written: float  # updated_at, as a Unix time
    shown: tuple | None
    status: str


class RowPoller(threading.Thread):
    """Every version of the job's row, with what its card shows (see the module notes)."""

    def __init__(self, pk: int) -> None:
        super().__init__(daemon=True)
        self.pk = pk
        self.versions: list[Version] = []
        self.error: Exception | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        from django.db import connection

        from models_app.consumers import _model_card
        from models_app.models import LanguageModel

        last = None
        try:
            while not self.halt.is_set():
                record = LanguageModel.objects.filter(pk=self.pk).first()
                if record is not None and record.updated_at != last:
                    last = record.updated_at
                    self.versions.append(
                        Version(
                            record.updated_at.timestamp(), shown(_model_card(record), self.pk), record.status
                        )
                    )
                self.halt.wait(POLL_INTERVAL)
        except Exception as exc:  # reported as an error by the caller
            self.error = exc
        finally:
            connection.close()


# -- the load --------------------------------------------------------------------------------------


@dataclass
class Client:
    index: int
    messages: list[tuple[float, str]] = field(default_factory=list)
    socket: object | None = None
    connected: bool = False
    closing: bool = False
    error: str | None = None


async def run_client(client: Client, url: str, origin: str, cookie: str) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    try:
        async with connect(
            url,
            origin=origin,
            additional_headers={"Cookie": cookie},
            proxy=None,
            open_timeout=30,
            max_size=None,
        ) as ws:
            client.socket, client.connected = ws, True
            async for message in ws:
                client.messages.append((time.time(), message))
            if not client.closing:
                client.error = f"closed by the server (code {ws.close_code})"
    except ConnectionClosed as exc:
        if not client.closing:
            client.error = f"disconnected: {exc}"
    except Exception as exc:
        client.error = f"{type(exc).__name__}: {exc}"


async def fetch_page(port: int, cookie: str, pk: int) -> str | None:
    """GET / to the last byte; the error, or None for a 200 page with the model's card."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(
            (
                f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nCookie: {cookie}\r\n"
                "Accept: text/html\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        body = await (reader.readexactly(int(length[1])) if length else reader.read())
    finally:
        writer.close()
    status = int(head.split(b" ", 2)[1])
    if status != 200:
        return f"HTTP {status}"
    if f'id="model-{pk}"'.encode() not in body:
        return "200 without the model's card"
    return None


async def page_load(
    port: int, cookie: str, pk: int, rps: float, seconds: float, timeout: float
) -> list[tuple[float, str | None]]:
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(due: float) -> tuple[float, str | None]:
        try:
            error = await asyncio.wait_for(fetch_page(port, cookie, pk), timeout)
        except TimeoutError:
            error = f"no answer within {timeout:g} s"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        return loop.time() - due, error

    tasks = []
    for i in range(int(rps * seconds)):
        due = start + i / rps
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        tasks.append(asyncio.create_task(one(due)))
    return await asyncio.gather(*tasks)


async def measure(args, port: int, session: str, pk: int, repo) -> dict:
    from models_app.models import LanguageModel

    cookie = f"sessionid={session}"
    clients = [Client(i) for i in range(args.clients)]
    tasks = [
        asyncio.create_task(run_client(c, f"ws://{HOST}:{port}/ws/live/", f"http://{HOST}:{port}", cookie))
        for c in clients
    ]
    deadline = time.monotonic() + 60
    while not all(c.connected or c.error for c in clients) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for c in clients:
        if not c.connected and not c.error:
            c.error = "not connected within 60 s"

    # Pace the rest of the download so that it outlasts the measurement.
    record = await asyncio.to_thread(lambda: LanguageModel.objects.get(pk=pk))
    left = max(record.bytes_total - record.bytes_downloaded, 1)
    repo.bytes_per_second = max(int(left / (args.seconds + TAIL_SECONDS)), 1000)

    window_start = time.time()
    pages = await page_load(port, cookie, pk, args.rps, args.seconds, args.timeout)
    window_end = window_start + args.seconds
    if time.time() < window_end:
        await asyncio.sleep(window_end - time.time())

    for c in clients:
        c.closing = True
    await asyncio.gather(*(c.socket.close() for c in clients if c.socket is not None), return_exceptions=True)
    _done, pending = await asyncio.wait(tasks, timeout=10)
    for task in pending:
        task.cancel()
    return {
        "clients": clients,
        "pages": pages,
        "window": (window_start, window_end),
        "throttle": repo.bytes_per_second,
    }


# -- results ---------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def match_updates(client: Client, versions: list[Version], pk: int, window: tuple[float, float]) -> dict:
    """Delays of the client's model-card fragments that arrived in the window (module notes)."""
    delays, updates, repeats, unmatched = [], 0, 0, 0
    previous, last = None, -1
    for arrival, text in client.messages:
        if f'id="model-{pk}"' not in text:
            continue
        counted = window[0] <= arrival <= window[1]
        updates += counted
        content = shown(text, pk)
        if content == previous:
            repeats += counted
            continue
        previous = content
        index = next(
            (
                i
                for i in range(last + 1, len(versions))
                if versions[i].shown == content and versions[i].written <= arrival
            ),
            None,
        )
        if index is None:
            unmatched += counted
            continue
        last = index
        if counted:
            delays.append(arrival - versions[index].written)
    return {"delays": delays, "updates": updates, "repeats": repeats, "unmatched": unmatched}


def summarize(
    args,
    run: dict,
    versions: list[Version],
    pk: int,
    job_problem: str | None,
    load_before: tuple,
    load_after: tuple,
) -> dict:
    window = run["window"]
    latencies = [latency for latency, error in run["pages"] if error is None]
    page_errors = [error for _, error in run["pages"] if error is not None]
    matched = [match_updates(c, versions, pk, window) for c in run["clients"]]
    delays = [d for m in matched for d in m["delays"]]
    updates = [m["updates"] for m in matched]
    ws_errors = [f"client {c.index}: {c.error}" for c in run["clients"] if c.error]
    silent = [
        f"client {c.index}: no update in the window"
        for c, m in zip(run["clients"], matched, strict=True)
        if not c.error and m["updates"] == 0
    ]
    unmatched = sum(m["unmatched"] for m in matched)
    writes = sum(window[0] <= v.written <= window[1] for v in versions)
    errors = (
        page_errors
        + ws_errors
        + silent
        + ([job_problem] if job_problem else [])
        + ([f"{unmatched} fragment(s) matched no row version"] if unmatched else [])
    )
    ms = lambda seconds: round(seconds * 1000, 1)  # noqa: E731
    return {
        "seconds": args.seconds,
        "clients": args.clients,
        "rps": args.rps,
        "pages_sent": len(run["pages"]),
        "pages_ok": len(latencies),
        "page_errors": len(page_errors),
        "page_ms": {p: ms(percentile(latencies, q)) for p, q in (("p50", 50), ("p95", 95), ("max", 100))}
        if latencies
        else None,
        "ws_connected": sum(c.connected for c in run["clients"]),
        "ws_errors": len(ws_errors),
        "row_writes": writes,
        "throttle_bps": run["throttle"],
        "updates_per_client": {"min": min(updates), "median": statistics.median(updates), "max": max(updates)}
        if updates
        else None,
        "repeats": sum(m["repeats"] for m in matched),
        "unmatched": unmatched,
        "delay_ms": {p: ms(percentile(delays, q)) for p, q in (("p50", 50), ("p95", 95), ("max", 100))}
        if delays
        else None,
        "delays_timed": len(delays),
        "load_average": {"before": load_before, "after": load_after},
        "errors": errors,
    }


def report(result: dict) -> str:
    def trio(values: dict | None, unit: str) -> str:
        return " / ".join(f"{v:g}" for v in values.values()) + f" {unit}" if values else "—"

    per_client = result["updates_per_client"]
    rows = [
        (
            "page requests (GET /)",
            f"{result['pages_sent']} sent, {result['pages_ok']} × 200, {result['page_errors']} errors",
        ),
        ("page latency p50 / p95 / max", trio(result["page_ms"], "ms")),
        ("websocket clients", f"{result['ws_connected']} connected, {result['ws_errors']} errors"),
        (
            "job row versions in the window",
            f"{result['row_writes']} ({result['row_writes'] / result['seconds']:.1f}/s)",
        ),
        (
            "updates per client min / median / max",
            f"{per_client['min']} / {per_client['median']:g} / {per_client['max']}" if per_client else "—",
        ),
        (
            "update delay p50 / p95 / max",
            trio(result["delay_ms"], "ms")
            + f" ({result['delays_timed']} timed, {result['repeats']} repeats, {result['unmatched']} unmatched)",
        ),
        (
            "load average before / after",
            f"{result['load_average']['before'][0]:.2f} / {result['load_average']['after'][0]:.2f}",
        ),
        ("errors", str(len(result["errors"]))),
    ]
    head = (
        f"{result['clients']} websocket clients, {result['rps']:g} GET / per second for "
        f"{result['seconds']:g} s, one download job (throttle {result['throttle_bps']} B/s)\n\n"
    )
    table = "| metric | value |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    return head + table


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the measurement")
    parser.add_argument("--clients", type=int, default=50, help="open websockets")
    parser.add_argument("--rps", type=float, default=20.0, help="GET / per second")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a page may take")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway folder (logs, db)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.clients < 1 or args.rps <= 0 or args.timeout <= 0:
        parser.error("--seconds, --clients, --rps and --timeout must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mistudio-load-"))
    processes: list[subprocess.Popen] = []
    hub = poller = None
    logs = {"daphne": root / "daphne.log", "qcluster": root / "qcluster.log"}
    try:
        from tests.hubserver import HubServer

        print(f"setting up in {root} ...", flush=True)
        setup_django(root / "data")
        build_repo(root / "llama")
        hub = HubServer().start()
        # Cancelling the job at the end breaks the transfer's pipe: expected, not worth a traceback.
        hub._server.handle_error = lambda request, address: None
        repo = hub.add(REPO_ID, root / "llama", bytes_per_second=SETUP_BYTES_PER_SECOND)
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.endpoint,
            "HF_HOME": str(root / "hf-home"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
        }
        port = free_port()
        web = spawn(
            [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), "mistudio_site.asgi:application"],
            env,
            logs["daphne"],
        )
        processes.append(web)
        processes.append(spawn([sys.executable, "manage.py", "qcluster"], env, logs["qcluster"]))
        wait_for_port(port, web)

        browser = Browser(f"http://{HOST}:{port}")
        browser.login()
        pk = start_download(browser)
        wait_until_downloading(pk)
        poller = RowPoller(pk)
        poller.start()
        print(f"download of {REPO_ID} running (model {pk}); measuring for {args.seconds:g} s ...", flush=True)
        load_before = os.getloadavg()
        run = asyncio.run(measure(args, port, browser.cookie("sessionid"), pk, repo))
        load_after = os.getloadavg()
        poller.halt.set()
        poller.join()

        versions = poller.versions
        job_problem = None
        if poller.error is not None:
            job_problem = f"reading the job row failed: {poller.error}"
        elif versions and versions[-1].status in ("error", "cancelled"):
            job_problem = f"the download job ended as {versions[-1].status} during the measurement"
        elif versions and versions[-1].written < run["window"][1] and versions[-1].status == "ready":
            print("note: the download finished before the end of the measurement", flush=True)
        try:  # let the worker stop at once rather than finish the download
            browser.htmx_post(f"/models/{pk}/cancel/", {})
        except OSError as exc:
            print(f"note: cancelling the download failed ({exc})", flush=True)

        result = summarize(args, run, versions, pk, job_problem, load_before, load_after)
        print()
        print(report(result))
        for error in result["errors"][:20]:
            print(f"error: {error}")
        if len(result["errors"]) > 20:
            print(f"... and {len(result['errors']) - 20} more")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2, default=list))
        return 1 if result["errors"] else 0
    except BaseException:
        for name, log in logs.items():
            if log.exists():
                tail = log.read_text(errors="replace")[-3000:]
                print(f"--- last lines of {name} ---\n{tail}", file=sys.stderr)
        raise
    finally:
        if poller is not None:
            poller.halt.set()
            poller.join(5)
        stop(processes)
        if hub is not None:
            hub.stop()
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
