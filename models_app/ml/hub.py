"""Talking to the HuggingFace Hub (or any mirror named by HF_ENDPOINT): repo-id rules, the
pre-flight look at a repository, and the download itself with progress and cancellation.

No torch here: the web process calls `check_repo_id` and `preflight` directly.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub import constants as hf_constants
from huggingface_hub import errors as hf_errors
from huggingface_hub.utils import HFValidationError, validate_repo_id
from tqdm.auto import tqdm

from . import architecture, quantization
from .errors import Cancelled, UserError
from .storage import repo_cache_dir, snapshot_dir

# huggingface_hub reads the response in 10 MB pieces and reports progress once per piece; on a
# slow link that is many seconds between updates. 256 KiB pieces keep the page's bytes, speed
# and ETA fresh (and make a resumed transfer lose less).
hf_constants.DOWNLOAD_CHUNK_SIZE = 256 * 1024

MAX_REPO_ID_LENGTH = 96
CAUSAL_ARCHITECTURE = re.compile(r"(ForCausalLM|LMHeadModel)$")
# Multimodal families whose ForConditionalGeneration class is a causal LM around a text decoder.
CAUSAL_CONDITIONAL_FAMILIES = frozenset({"gemma3"})
WEIGHT_SUFFIXES = (".safetensors",)
LEGACY_WEIGHT = re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin(\.index\.json)?$")
SIDE_FILES = re.compile(r"^(.*\.json|tokenizer\.model|.*\.tiktoken|merges\.txt|vocab\.txt|spiece\.model)$")
# huggingface_hub's `token`: the user's token; None lets it use the operator's HF_TOKEN or cached
# login; False forbids that (models_app.token_crypto.hub_token).
HubToken = str | bool | None


class HubError(UserError):
    """A failure explained for the user. `field` names the form field it belongs to, if any."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class DownloadCancelled(Cancelled):
    pass


@dataclass
class RepoFile:
    path: str
    size: int


@dataclass
class Preflight:
    repo_id: str
    revision: str
    commit_sha: str
    gated: bool
    config: dict[str, Any]
    summary: dict[str, Any]
    params_count: int
    params_exact: bool
    files: list[RepoFile] = field(default_factory=list)

    @property
    def download_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def memory_by_format(self) -> dict[str, int]:
        return quantization.memory_table(self.params_count)


def check_repo_id(repo_id: str) -> str | None:
    """The reason `repo_id` cannot name a Hub repository, or None when it can."""
    if not repo_id:
        return "Enter a repository id such as TinyLlama/TinyLlama-1.1B-Chat-v1.0."
    if any(ch.isspace() for ch in repo_id):
        return "A repository id cannot contain spaces."
    if len(repo_id) > MAX_REPO_ID_LENGTH:
        return f"A repository id is at most {MAX_REPO_ID_LENGTH} characters (this one has {len(repo_id)})."
    if repo_id.count("/") > 1:
        return "Use the form owner/name, with a single slash."
    if ".." in repo_id or "--" in repo_id:
        return "A repository id cannot contain '..' or '--'."
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return "Use letters, digits, '-', '_' and '.' only; each part must not start or end with '-' or '.'."
    return None


_BAD_IN_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,1000}")
MAX_REVISION_LENGTH = 255


def check_revision(revision: str) -> str | None:
    """The reason `revision` cannot be a branch, tag or commit, or None. Git's ref-name rules:
    it becomes a file name under the cache's refs/ (and a URL part), so it may not climb out."""
    if not revision:
        return None
    if len(revision) > MAX_REVISION_LENGTH:
        return f"A revision is at most {MAX_REVISION_LENGTH} characters."
    if (
        _BAD_IN_REF.search(revision)
        or revision.startswith(("/", "-", "."))
        or revision.endswith(("/", ".", ".lock"))
        or "/." in revision
        or revision == "@"
    ):
        return (
            "A revision is a branch, tag or commit id: no spaces, no '..', no leading '/' or "
            "'-', none of ~ ^ : ? * [ \\."
        )
    return None


def is_commit_sha(value: str) -> bool:
    """40 lowercase hex digits, as the Hub names commits (and the cache names snapshot folders)."""
    return bool(_COMMIT.fullmatch(value or ""))


def check_token(token: str) -> str | None:
    """The reason `token` cannot be an access token, or None: printable ASCII, no whitespace
    (a line break in a header would make the HTTP library fail with the token in its message)."""
    if token and not _TOKEN.fullmatch(token):
        return "An access token is printable ASCII with no spaces or line breaks (at most 1000 characters)."
    return None


def explain(
    exc: BaseException, repo_id: str, revision: str, token_given: bool, kind: str = "model"
) -> HubError:
    """Translate a huggingface_hub / network failure into one sentence a researcher understands."""
    if isinstance(exc, HubError):
        return exc
    status = getattr(getattr(exc, "response", None), "status_code", None)
    server_message = getattr(exc, "server_message", "") or ""
    if isinstance(exc, hf_errors.GatedRepoError):
        if status == 403 or token_given:
            return HubError(
                f"Your access token does not grant access to the gated {kind} {repo_id}. "
                "Accept its license on the model page with the same account, then retry.",
                field="token",
            )
        return HubError(
            f"{repo_id} is a gated {kind}: accept its license on the Hub and enter an access token.",
            field="token",
        )
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return HubError(f"Revision '{revision}' does not exist in {repo_id}.", field="revision")
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        return HubError(
            f"Repository {repo_id} was not found on the Hub. Check the id; a private "
            "repository also needs an access token.",
            field="repo_id",
        )
    if isinstance(exc, hf_errors.RemoteEntryNotFoundError):
        return HubError(
            f"{repo_id} has no config.json at {revision}: it is not a transformers model.", field="repo_id"
        )
    if status == 401:
        return HubError(
            "The access token was rejected by the Hub (401): check that it is a valid read token.",
            field="token",
        )
    if status == 403:
        return HubError(f"The Hub refused access to {repo_id} (403).", field="token")
    if isinstance(exc, hf_errors.HfHubHTTPError):
        return HubError(
            f"The Hub answered with an error{f' ({status})' if status else ''}: "
            f"{server_message or exc}".strip()
        )
    if isinstance(
        exc, (httpx2.ConnectError, httpx2.TimeoutException, httpx2.RemoteProtocolError, ConnectionError)
    ):
        return HubError("The connection to the Hub was lost while downloading. Check the network and retry.")
    if isinstance(exc, OSError) and exc.errno == 28:
        return HubError("The disk is full: free some space and retry.")
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return HubError("A file arrived incomplete (the connection dropped). Retry the download.")
    return HubError(f"{type(exc).__name__}: {exc}")


def is_causal_lm(config: dict[str, Any]) -> bool:
    names = config.get("architectures") or []
    if any(CAUSAL_ARCHITECTURE.search(name) for name in names):
        return True
    return config.get("model_type") in CAUSAL_CONDITIONAL_FAMILIES


def select_files(siblings: list[Any], include_code: bool = False) -> list[RepoFile]:
    """The files a causal LM needs: config, tokenizer, and one copy of the weights (safetensors
    preferred over pickled .bin; other frameworks' and sub-folder copies skipped)."""
    top_level = [s for s in siblings if "/" not in s.rfilename]
    has_safetensors = any(s.rfilename.endswith(WEIGHT_SUFFIXES) for s in top_level)
    chosen = []
    for sibling in top_level:
        name = sibling.rfilename
        is_weight = name.endswith(WEIGHT_SUFFIXES) or name == "model.safetensors.index.json"
        is_legacy = bool(LEGACY_WEIGHT.match(name))
        wanted = (is_weight and has_safetensors) or (is_legacy and not has_safetensors)
        wanted = wanted or (bool(SIDE_FILES.match(name)) and not is_legacy and not is_weight)
        wanted = wanted or (include_code and name.endswith(".py"))
        if wanted:
            chosen.append(RepoFile(path=name, size=int(sibling.size or 0)))
    return chosen


class _SilentBar(tqdm):
    """A bar that draws nothing. huggingface_hub's default one, even where it shows nothing,
    ends with a newline on a terminal: a blank line in the middle of a command's output."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def _fetch_config(repo_id: str, commit: str, token: HubToken, endpoint: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mistudio-config-") as scratch:
        path = hf_hub_download(
            repo_id,
            "config.json",
            revision=commit,
            cache_dir=scratch,
            token=token,
            endpoint=endpoint,
            tqdm_class=_SilentBar,
        )
        try:
            return json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise HubError(f"{repo_id}'s config.json is not valid JSON ({exc}).", field="repo_id") from exc


def _parameter_count(api: HfApi, info: Any, commit: str, config: dict[str, Any]) -> tuple[int, bool]:
    if getattr(info, "safetensors", None) and info.safetensors.total:
        return int(info.safetensors.total), True
    try:
        metadata = api.get_safetensors_metadata(info.id, revision=commit)
        return int(sum(metadata.parameter_count.values())), True
    except (hf_errors.NotASafetensorsRepoError, hf_errors.SafetensorsParsingError):
        return architecture.estimate_parameters(config), False


def preflight(
    repo_id: str,
    revision: str = "main",
    token: HubToken = None,
    endpoint: str | None = None,
    trust_remote_code: bool = False,
) -> Preflight:
    """Everything known about a repository before any weight is fetched (Hub API + config.json)."""
    problem = check_repo_id(repo_id)
    if problem:
        raise HubError(problem, field="repo_id")
    revision = revision or "main"
    try:
        api = HfApi(endpoint=endpoint, token=token)
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
        commit = info.sha or ""
        if not is_commit_sha(commit):  # it names folders of the cache: hex, or nothing
            raise HubError(
                f"The Hub answered with a malformed commit id for {repo_id}; try again later.",
                field="repo_id",
            )
        config = _fetch_config(repo_id, commit, token, endpoint)
        params, exact = _parameter_count(api, info, commit, config)
    except HubError:
        raise
    except Exception as exc:  # every Hub failure becomes a readable message
        raise explain(exc, repo_id, revision, token_given=bool(token)) from exc
    if not is_causal_lm(config):
        names = ", ".join(config.get("architectures") or [config.get("model_type") or "unknown"])
        raise HubError(
            f"{repo_id} is not a causal language model (its architecture is {names}).", field="repo_id"
        )
    files = select_files(info.siblings or [], include_code=trust_remote_code)
    return Preflight(
        repo_id=repo_id,
        revision=revision,
        commit_sha=commit,
        gated=bool(info.gated),
        config=config,
        summary=architecture.summarize(config),
        params_count=params,
        params_exact=exact,
        files=files,
    )


def free_disk_bytes(path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free


@dataclass
class DownloadProgress:
    """Bytes done over all files, with speed over the last few seconds and an ETA."""

    total: int
    done: int = 0
    file: str = ""
    started: float = field(default_factory=time.monotonic)
    window: list[tuple[float, int]] = field(default_factory=list)

    last_data: float = field(default_factory=time.monotonic)

    def advance(self, nbytes: int) -> None:
        """Count `nbytes` more; 0 marks a moment without data, so the speed falls to zero."""
        self.done += nbytes
        now = time.monotonic()
        if nbytes:
            self.last_data = now
        self.window.append((now, self.done))
        while len(self.window) > 2 and now - self.window[0][0] > 5.0:
            self.window.pop(0)

    @property
    def speed(self) -> float:
        if len(self.window) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self.window[0], self.window[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0

    @property
    def idle_seconds(self) -> float:
        return time.monotonic() - self.last_data

    @property
    def eta_seconds(self) -> float | None:
        speed = self.speed
        return max(self.total - self.done, 0) / speed if speed > 0 else None


ProgressCallback = Callable[[DownloadProgress], object]  # what it returns is ignored


def _progress_bar_class(
    progress: DownloadProgress, on_progress: ProgressCallback, should_cancel: Callable[[], bool]
) -> type:
    class _StudioBar(_SilentBar):
        """huggingface_hub reports every chunk through its tqdm bar; this one forwards the bytes
        to the job and is where cancellation interrupts a file mid-stream."""

        def update(self, n: float | None = 1) -> None:
            progress.advance(int(n or 0))
            if should_cancel():
                raise DownloadCancelled()
            on_progress(progress)

    return _StudioBar


def download(
    pre: Preflight,
    cache_dir: Path,
    token: HubToken = None,
    endpoint: str | None = None,
    on_progress: ProgressCallback = lambda p: None,
    should_cancel: Callable[[], bool] = lambda: False,
) -> Path:
    """Fetch the pre-flight's files into the HF cache layout and return the snapshot folder."""
    snapshot = snapshot_dir(cache_dir, pre.repo_id, pre.commit_sha)
    cached = {f.path for f in pre.files if (snapshot / f.path).exists()}
    progress = DownloadProgress(
        total=pre.download_bytes, done=sum(f.size for f in pre.files if f.path in cached)
    )
    bar = _progress_bar_class(progress, on_progress, should_cancel)
    on_progress(progress)
    # Small files first so the tokenizer and config are there before the long weight transfer.
    for repo_file in sorted(pre.files, key=lambda f: f.size):
        if should_cancel():
            raise DownloadCancelled()
        if repo_file.path in cached:
            continue
        progress.file = repo_file.path
        try:
            hf_hub_download(
                pre.repo_id,
                repo_file.path,
                revision=pre.commit_sha,
                cache_dir=cache_dir,
                token=token,
                endpoint=endpoint,
                tqdm_class=bar,
            )
        except DownloadCancelled:
            raise
        except Exception as exc:
            raise explain(exc, pre.repo_id, pre.revision, token_given=bool(token)) from exc
    _write_ref(cache_dir, pre)
    on_progress(progress)
    return snapshot


def _write_ref(cache_dir: Path, pre: Preflight) -> None:
    """Record revision -> commit like huggingface_hub does, so other HF tools find the snapshot."""
    if pre.revision == pre.commit_sha:
        return
    refs = (repo_cache_dir(cache_dir, pre.repo_id) / "refs").resolve()
    ref = (refs / pre.revision).resolve()
    if check_revision(pre.revision) or not ref.is_relative_to(refs) or not is_commit_sha(pre.commit_sha):
        raise HubError(f"Revision {pre.revision!r} cannot be recorded in the cache.", field="revision")
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(pre.commit_sha)


DATASET_FILE_PREFERENCE = ("*.parquet", "*.jsonl", "*.json", "*.csv", "*.txt")


def resolve_dataset_files(
    repo_id: str, revision: str, pattern: str, token: HubToken = None, endpoint: str | None = None
) -> tuple[str | None, list[RepoFile]]:
    """(commit, files with their sizes) of a Hub dataset repository matching `pattern`, or, when
    it is empty, its first kind of data file (parquet preferred). Reads the Hub API only. The
    commit is None when the Hub's answer names none."""
    from fnmatch import fnmatch

    problem = check_repo_id(repo_id)
    if problem:
        raise HubError(problem, field="repo_id")
    revision = revision or "main"
    try:
        info = HfApi(endpoint=endpoint, token=token).dataset_info(
            repo_id, revision=revision, files_metadata=True
        )
    except Exception as exc:
        raise explain(exc, repo_id, revision, token_given=bool(token), kind="dataset") from exc
    files = {s.rfilename: RepoFile(s.rfilename, s.size or 0) for s in info.siblings or []}
    for candidate in [pattern] if pattern else list(DATASET_FILE_PREFERENCE):
        chosen = sorted(n for n in files if fnmatch(n, candidate) and not n.startswith("."))
        if chosen:
            return info.sha, [files[n] for n in chosen]
    wanted = pattern or "a .parquet, .jsonl, .json, .csv or .txt file"
    raise HubError(f"{repo_id} has no file matching {wanted}.", field="files")


def download_dataset_files(
    repo_id: str,
    commit: str,
    files: list[RepoFile],
    target: Path,
    token: HubToken = None,
    endpoint: str | None = None,
    on_progress: ProgressCallback = lambda p: None,
    should_cancel: Callable[[], bool] = lambda: False,
) -> list[Path]:
    """Fetch the resolved files of a Hub dataset repository into `target`."""
    progress = DownloadProgress(total=sum(f.size for f in files))
    bar = _progress_bar_class(progress, on_progress, should_cancel)
    paths = []
    for repo_file in files:
        progress.file = repo_file.path
        try:
            paths.append(
                Path(
                    hf_hub_download(
                        repo_id,
                        repo_file.path,
                        repo_type="dataset",
                        revision=commit,
                        local_dir=target,
                        token=token,
                        endpoint=endpoint,
                        tqdm_class=bar,
                    )
                )
            )
        except DownloadCancelled:
            raise
        except Exception as exc:
            raise explain(exc, repo_id, commit, token_given=bool(token), kind="dataset") from exc
    return paths
