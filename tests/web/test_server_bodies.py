"""Request bodies against the real server: `manage.py run_studio` in a subprocess, driven over raw
sockets. What the server stores of a body is read from its open files under its TMPDIR, the data
directory's tmp/ (Twisted spools a body to an unlinked temporary file there)."""

from __future__ import annotations

import socket
import time

import pytest

from tests.workers import Studio, first_line, start_studio, stop

# Slow: run_studio in a process of its own for each test.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
MIB = 1 << 20
LIMIT = 2 * MIB + MIB  # MISTUDIO_MAX_UPLOAD_BYTES below, plus the form's allowance


@pytest.fixture
def studio(settings, hub):
    process, url = start_studio(
        settings,
        hub.endpoint,
        "--no-workers",
        MISTUDIO_MAX_UPLOAD_BYTES=str(2 * MIB),
        MISTUDIO_REQUEST_GRACE_SECONDS="2",
    )
    # run_studio points the web server's TMPDIR at the data directory's tmp/, beside Django's uploads.
    yield Studio(process, url, settings.MODELS_DIR.parent / "tmp")
    stop(process)


@pytest.fixture
def session_cookie(client, owner) -> str:
    client.force_login(owner)
    return f"sessionid={client.cookies['sessionid'].value}"


def answer(sock: socket.socket, within: float) -> tuple[str, float]:
    """The first line of the server's answer, and how long it took."""
    sock.settimeout(within)
    started = time.monotonic()
    return first_line(sock), time.monotonic() - started


def test_it_answers_an_anonymous_200_mb_body_403_within_a_second_with_nothing_stored(studio):
    sock = studio.connect(
        "POST /datasets/upload/ HTTP/1.1\r\nContent-Length: 209715200\r\n"
        "Content-Type: multipart/form-data; boundary=x"
    )
    sock.sendall(b"x" * 65536)
    status, took = answer(sock, within=1.0)
    assert status == "HTTP/1.1 403 Forbidden" and took < 1.0
    assert studio.spooled() == 0


def test_it_answers_a_signed_in_body_over_the_limit_413_from_its_length(studio, session_cookie):
    sock = studio.connect("POST /datasets/upload/ HTTP/1.1\r\nContent-Length: 16777216", session_cookie)
    status, took = answer(sock, within=1.0)
    assert status == "HTTP/1.1 413 Content Too Large" and took < 1.0
    assert studio.spooled() == 0


def test_it_answers_an_anonymous_chunked_body_403_before_reading_it(studio):
    sock = studio.connect("POST /datasets/upload/ HTTP/1.1\r\nTransfer-Encoding: chunked")
    status, _ = answer(sock, within=1.0)
    assert status == "HTTP/1.1 403 Forbidden" and studio.spooled() == 0


def test_it_cuts_a_signed_in_chunked_body_at_the_limit(studio, session_cookie):
    sock = studio.connect("POST /datasets/upload/ HTTP/1.1\r\nTransfer-Encoding: chunked", session_cookie)
    sock.settimeout(0.05)
    chunk, most_spooled, status = b"x" * (256 * 1024), 0, ""
    for _ in range(64):  # 16 MiB offered, over five times the limit
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            break
        most_spooled = max(most_spooled, studio.spooled())
        try:
            status = sock.recv(4096).split(b"\r\n")[0].decode()
            break
        except TimeoutError:
            continue
    status = status or answer(sock, within=2.0)[0]
    assert status == "HTTP/1.1 413 Content Too Large"
    assert 0 < most_spooled <= LIMIT
    time.sleep(0.3)
    assert studio.spooled() == 0  # the refused body's file went with the refusal


def test_it_drops_a_body_that_trickles(studio):
    sock = studio.connect(
        "POST /login/ HTTP/1.1\r\nContent-Length: 1000\r\nContent-Type: application/x-www-form-urlencoded"
    )
    sock.settimeout(0.01)
    started, status = time.monotonic(), ""
    while time.monotonic() - started < 10 and not status:
        try:
            sock.sendall(b"a")
            status = sock.recv(4096).split(b"\r\n")[0].decode()
        except TimeoutError:
            time.sleep(0.5)
        except OSError:
            break
    assert status == "HTTP/1.1 408 Request Timeout"
    assert time.monotonic() - started < 6  # the grace (2 s) and one check of the server's (2 s)


def test_it_drops_headers_that_never_end(studio):
    sock = socket.create_connection(("127.0.0.1", studio.port))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    status, took = answer(sock, within=8.0)
    assert status == "HTTP/1.1 408 Request Timeout" and took < 4


def test_it_sends_continue_only_once_the_session_is_known(studio, session_cookie):
    sock = studio.connect(
        "POST /datasets/upload/ HTTP/1.1\r\nContent-Length: 200000\r\nExpect: 100-continue", session_cookie
    )
    assert answer(sock, within=1.0)[0] == "HTTP/1.1 100 Continue"
    anonymous = studio.connect(
        "POST /datasets/upload/ HTTP/1.1\r\nContent-Length: 200000\r\nExpect: 100-continue"
    )
    assert answer(anonymous, within=1.0)[0] == "HTTP/1.1 403 Forbidden"


def test_it_passes_a_signed_in_upload_to_the_studio(studio, owner):
    """The whole way a browser goes: the login form (a small anonymous body), then an upload
    larger than an anonymous body may be."""
    from models_app.models import Dataset

    browser = studio.sign_in("owner", "pw-owner-123")
    lines = "".join(f"sample {i}: the residual stream carries feature {i % 7}\n" for i in range(4000))
    uploaded = studio.upload(browser, "corpus.txt", lines.encode())
    assert uploaded.status_code == 200 and len(lines) > 64 * 1024
    assert Dataset.objects.get(name="corpus").num_samples == 4000


def test_it_drops_a_request_line_that_trickles(studio):
    sock = socket.create_connection(("127.0.0.1", studio.port))
    sock.settimeout(0.01)
    started, status = time.monotonic(), ""
    for byte in b"GET /" + b"a" * 100:  # a byte every half second; the line never ends
        try:
            sock.sendall(bytes([byte]))
            status = first_line(sock)
            break
        except TimeoutError:
            time.sleep(0.5)
        except OSError:
            break
    assert status == "HTTP/1.1 408 Request Timeout"
    assert time.monotonic() - started < 4  # the grace (2 s) from the first byte


def test_it_runs_nothing_whose_headers_end_after_their_refusal(studio, owner):
    from models_app.models import ApiToken
    from templates_app.models import ExtractionTemplate

    _record, token = ApiToken.issue(owner, "late")
    body = b'{"name": "late", "layer_indices": [0], "hook_types": ["mlp"]}'
    sock = socket.create_connection(("127.0.0.1", studio.port))
    sock.sendall(
        f"POST /api/v1/templates HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n".encode()
    )
    assert answer(sock, within=4)[0] == "HTTP/1.1 408 Request Timeout"  # the blank line never came
    sock.sendall(b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    time.sleep(1)
    assert not ExtractionTemplate.objects.exists()


def test_it_drops_a_body_that_stalls_after_a_burst(studio):
    """The rate counts over the last grace period: 64 KiB at once cannot buy a minute of silence."""
    sock = studio.connect(
        "POST /login/ HTTP/1.1\r\nContent-Length: 65536\r\nContent-Type: application/x-www-form-urlencoded"
    )
    sock.sendall(b"a" * 65535)
    status, took = answer(sock, within=12)
    assert status == "HTTP/1.1 408 Request Timeout" and took < 8  # 64 s at the old average rule


def test_it_judges_each_request_of_a_kept_alive_connection(studio):
    sock = studio.connect("HEAD /login/ HTTP/1.1")  # an answer without a body: the next one is clean
    assert answer(sock, within=2)[0] == "HTTP/1.1 200 OK"
    time.sleep(0.2)
    sock.setblocking(False)
    try:
        sock.recv(1 << 16)  # the rest of the headers
    except BlockingIOError:
        pass
    sock.setblocking(True)
    sock.sendall(b"POST /datasets/upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 209715200\r\n\r\n")
    assert answer(sock, within=1)[0] == "HTTP/1.1 403 Forbidden"


def test_it_runs_a_body_that_arrived_whole_while_its_token_was_checked(studio, owner):
    from models_app.models import ApiToken
    from templates_app.models import ExtractionTemplate

    _record, token = ApiToken.issue(owner, "chunked")
    body = b'{"name": "whole", "layer_indices": [0], "hook_types": ["mlp"]}'
    sock = socket.create_connection(("127.0.0.1", studio.port))
    sock.sendall(
        b"POST /api/v1/templates HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
        % (token.encode(), len(body), body)
    )  # one packet: judged after the body is in
    assert answer(sock, within=5)[0] == "HTTP/1.1 201 Created"
    assert ExtractionTemplate.objects.get().name == "whole"


def test_it_sweeps_uploads_a_killed_server_left_behind(settings, hub):
    import os

    leftovers = settings.MODELS_DIR.parent / "tmp"
    leftovers.mkdir(parents=True, exist_ok=True)
    (leftovers / "old.upload").write_bytes(b"x" * 1000)
    os.utime(leftovers / "old.upload", (time.time() - 2 * 86400,) * 2)
    (leftovers / "fresh.upload").write_bytes(b"y")
    process, _url = start_studio(settings, hub.endpoint, "--no-workers")  # web servers may share tmp/
    stop(process)
    assert sorted(p.name for p in leftovers.iterdir()) == ["fresh.upload"]
    process, _url = start_studio(settings, hub.endpoint)  # an embedded studio owns it
    stop(process)
    assert list(leftovers.iterdir()) == []
