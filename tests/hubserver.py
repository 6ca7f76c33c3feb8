"""A local server speaking the HuggingFace Hub protocol, for tests and demos.

Serves folders as model repositories through the same endpoints huggingface_hub calls:
  GET  /api/models/{repo}[/revision/{rev}]       model info (siblings with sizes, sha, gated)
  HEAD /{repo}/resolve/{rev}/{path}              file metadata (X-Repo-Commit, ETag, size)
  GET  /{repo}/resolve/{rev}/{path}              the file, with HTTP Range support
with the Hub's error codes (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo). Faults
can be switched on per repository: a connection dropped after N bytes of a file, or a slow
transfer, to exercise retries, progress and cancellation.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

GOOD_TOKEN = "hf_good_token_for_tests"
NO_ACCESS_TOKEN = "hf_valid_but_no_access"
# The files a fault (a throttle, a dropped connection) applies to: weights, and datasets' data.
PAYLOAD_SUFFIXES = (".safetensors", ".bin", ".parquet", ".jsonl", ".csv", ".txt")


@dataclass
class Repo:
    repo_id: str
    folder: Path
    gated: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    drop_after_bytes: int | None = None  # close the connection after this many bytes of a file
    drop_times: int = 0  # how many requests get dropped (-1: all)
    bytes_per_second: int | None = None  # throttle weight and data transfers
    repo_type: str = "model"

    @property
    def files(self) -> dict[str, Path]:
        return {
            p.relative_to(self.folder).as_posix(): p for p in sorted(self.folder.rglob("*")) if p.is_file()
        }

    @property
    def sha(self) -> str:
        digest = hashlib.sha1()
        for name, path in self.files.items():
            digest.update(name.encode())
            digest.update(_file_sha256(path).encode())
        return digest.hexdigest()


_sha_cache: dict[tuple[str, float, int], str] = {}


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_mtime, stat.st_size)
    if key not in _sha_cache:
        _sha_cache[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _sha_cache[key]


class HubServer:
    def __init__(self, port: int = 0, good_tokens: tuple[str, ...] = (GOOD_TOKEN,)) -> None:
        """`good_tokens`: the tokens with access to every gated repository."""
        self.repos: dict[str, Repo] = {}
        self.good_tokens = good_tokens
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an IPv4 server's address
        return f"http://{host}:{port}"

    def add(self, repo_id: str, folder: Path, **options) -> Repo:
        repo = Repo(repo_id=repo_id, folder=Path(folder), **options)
        self.repos[self._key(repo.repo_type, repo_id)] = repo
        return repo

    @staticmethod
    def _key(repo_type: str, repo_id: str) -> str:
        return repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"

    def clear_faults(self) -> None:
        """Every repository back to full speed, no connection dropped. Tests that started workers
        call it before stopping them: a throttled transfer still running then ends at once,
        instead of holding up the worker's graceful stop for its whole length."""
        for repo in self.repos.values():
            repo.drop_after_bytes, repo.drop_times, repo.bytes_per_second = None, 0, None

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                hub.requests.append(("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
                hub.route(self, head=False)

            def do_HEAD(self) -> None:
                hub.requests.append(("HEAD", self.path, {k.lower(): v for k, v in self.headers.items()}))
                hub.route(self, head=True)

        return Handler

    # -- routing ---------------------------------------------------------------------------
    INFO = re.compile(
        r"^/api/(?P<kind>models|datasets)/(?P<repo>[^/]+(?:/[^/]+)?)(?:/revision/(?P<rev>[^/]+))?$"
    )
    TREE = re.compile(
        r"^/api/(?P<kind>models|datasets)/(?P<repo>[^/]+(?:/[^/]+)?)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"
    )
    RESOLVE = re.compile(
        r"^/(?P<kind>datasets/)?(?P<repo>[^/]+/[^/]+|[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"
    )

    def route(self, req: BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlparse(req.path).path)
        match = self.TREE.match(path)
        if match and not head:  # snapshot_download lists the files this way
            key = self._key("dataset" if match["kind"] == "datasets" else "model", match["repo"])
            return self._tree(req, key, match["rev"])
        match = self.INFO.match(path)
        if match and not head:
            key = self._key("dataset" if match["kind"] == "datasets" else "model", match["repo"])
            return self._info(req, key, match["rev"] or "main")
        match = self.RESOLVE.match(path)
        if match:
            key = self._key("dataset" if match["kind"] else "model", match["repo"])
            return self._resolve(req, key, match["rev"], match["path"], head)
        self._error(req, 404, "EntryNotFound", "Not found", head)

    def _lookup(self, req, repo_id: str, rev: str, head: bool) -> Repo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(req, 404, "RepoNotFound", "Repository not found", head)
            return None
        if rev not in ("main", repo.sha) and rev not in repo.tags:
            self._error(req, 404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
            return None
        return repo

    def _authorization_problem(self, req, repo: Repo) -> tuple[int, str, str] | None:
        header = req.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header else ""
        if token and token not in (*self.good_tokens, NO_ACCESS_TOKEN):
            return 401, "", "Invalid credentials in Authorization header"
        if not repo.gated:
            return None
        if not token:
            return (
                401,
                "GatedRepo",
                "Access to model is restricted. You must have access to it and be authenticated "
                "to access it.",
            )
        if token == NO_ACCESS_TOKEN:
            return 403, "GatedRepo", "Access to model is restricted and you are not in the authorized list."
        return None

    def _info(self, req, repo_id: str, rev: str) -> None:
        repo = self._lookup(req, repo_id, rev, head=False)
        if repo is None:
            return
        problem = self._authorization_problem(req, repo)
        if problem and problem[1] != "GatedRepo":  # the Hub shows gated repos' info to anyone
            return self._error(req, problem[0], problem[1], problem[2], head=False)
        config = (
            json.loads((repo.folder / "config.json").read_text())
            if (repo.folder / "config.json").exists()
            else {}
        )
        siblings = []
        for name, file in repo.files.items():
            entry = {"rfilename": name, "size": file.stat().st_size, "blobId": _file_sha256(file)[:40]}
            if name.endswith((".safetensors", ".bin")):
                entry["lfs"] = {"sha256": _file_sha256(file), "size": file.stat().st_size, "pointerSize": 134}
            siblings.append(entry)
        body = {
            "_id": repo.sha[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "sha": repo.sha,
            "private": False,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": ["transformers"],
            "library_name": "transformers",
            "pipeline_tag": "text-generation" if repo.repo_type == "model" else None,
            "config": {k: config[k] for k in ("architectures", "model_type") if k in config},
            "siblings": siblings,
            "lastModified": "2026-01-01T00:00:00.000Z",
            "createdAt": "2026-01-01T00:00:00.000Z",
        }
        self._send_json(req, 200, body)

    def _tree(self, req, repo_id: str, rev: str) -> None:
        repo = self._lookup(req, repo_id, rev, head=False)
        if repo is None:
            return
        problem = self._authorization_problem(req, repo)
        if problem:
            return self._error(req, *problem, head=False)
        entries = []
        for name, file in repo.files.items():
            entry = {
                "type": "file",
                "path": name,
                "size": file.stat().st_size,
                "oid": _file_sha256(file)[:40],
            }
            if name.endswith((".safetensors", ".bin")):
                entry["lfs"] = {"oid": _file_sha256(file), "size": file.stat().st_size, "pointerSize": 134}
            entries.append(entry)
        self._send_json(req, 200, entries)

    def _resolve(self, req, repo_id: str, rev: str, path: str, head: bool) -> None:
        repo = self._lookup(req, repo_id, rev, head)
        if repo is None:
            return
        problem = self._authorization_problem(req, repo)
        if problem:
            return self._error(req, *problem, head=head)
        file = repo.files.get(path)
        if file is None:
            return self._error(req, 404, "EntryNotFound", f"{path} does not exist", head)
        data_size = file.stat().st_size
        start, end = 0, data_size - 1
        status = 200
        range_header = req.headers.get("Range")
        if range_header and not head:
            m = re.match(r"bytes=(\d*)-(\d*)", range_header)
            if m:
                if m[1]:
                    start = int(m[1])
                    end = int(m[2]) if m[2] else data_size - 1
                else:  # suffix range: the last N bytes
                    start = max(data_size - int(m[2]), 0)
                end = min(end, data_size - 1)
                status = 206
        req.send_response(status)
        req.send_header("X-Repo-Commit", repo.sha)
        etag = f'"{_file_sha256(file)}"'
        if path.endswith((".safetensors", ".bin")):
            req.send_header("X-Linked-Etag", etag)
            req.send_header("X-Linked-Size", str(data_size))
        req.send_header("ETag", etag)
        req.send_header("Accept-Ranges", "bytes")
        req.send_header("Content-Length", str(end - start + 1 if not head else data_size))
        if status == 206:
            req.send_header("Content-Range", f"bytes {start}-{end}/{data_size}")
        req.end_headers()
        if head:
            return
        self._stream(req, repo, file, start, end)

    def _stream(self, req, repo: Repo, file: Path, start: int, end: int) -> None:
        is_weight = file.suffix in PAYLOAD_SUFFIXES
        drop_at = None
        if (
            is_weight
            and repo.drop_after_bytes is not None
            and repo.drop_times != 0
            and end - start + 1 > repo.drop_after_bytes
        ):
            drop_at = start + repo.drop_after_bytes
            if repo.drop_times > 0:
                repo.drop_times -= 1
        chunk = 16 * 1024
        with file.open("rb") as handle:
            handle.seek(start)
            position = start
            while position <= end:
                size = min(chunk, end - position + 1)
                if drop_at is not None and position + size > drop_at:
                    size = max(drop_at - position, 0)
                    if size:
                        req.wfile.write(handle.read(size))
                    req.wfile.flush()
                    req.close_connection = True
                    req.connection.shutdown(2)
                    return
                req.wfile.write(handle.read(size))
                position += size
                if is_weight and repo.bytes_per_second:
                    time.sleep(size / repo.bytes_per_second)

    def _error(self, req, status: int, code: str, message: str, head: bool) -> None:
        body = json.dumps({"error": message}).encode()
        req.send_response(status)
        if code:
            req.send_header("X-Error-Code", code)
        req.send_header("X-Error-Message", message)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if not head:
            req.wfile.write(body)

    def _send_json(self, req, status: int, body: dict | list) -> None:
        data = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)
