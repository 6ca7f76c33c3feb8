"""The on-disk layout of downloaded models, and giving the disk back.

The HF cache layout (models--org--name/{blobs,snapshots/<commit>,refs}) is kept so other
HuggingFace tools reuse the files; snapshot entries are symlinks into blobs/, which several
snapshots (revisions) of one repository can share.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def repo_cache_dir(cache_dir: Path, repo_id: str) -> Path:
    return Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))


def snapshot_dir(cache_dir: Path, repo_id: str, commit: str) -> Path:
    return repo_cache_dir(cache_dir, repo_id) / "snapshots" / commit


def tree_size(path: Path) -> int:
    """Bytes of the regular files under `path`, symlinks not followed."""
    path = Path(path)
    if path.is_symlink() or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = Path(root) / name
            if not full.is_symlink():
                total += full.stat().st_size
    return total


def disk_usage(path: Path) -> int:
    """Bytes the regular files under `path` take on disk: less than their size where they have
    holes (an extraction's padding is never written)."""
    path = Path(path)
    if not path.is_dir():
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = Path(root) / name
            if not full.is_symlink():
                total += full.stat().st_blocks * 512
    return total


def unfinished_blobs(cache_dir: Path, repo_id: str) -> list[Path]:
    """A repository's blobs that a transfer left half-written (`<etag>.<random>.incomplete`)."""
    blobs = repo_cache_dir(cache_dir, repo_id) / "blobs"
    try:
        return [p for p in blobs.iterdir() if p.name.endswith(".incomplete") and p.is_file()]
    except OSError:
        return []


def file_disk_usage(path: Path) -> int:
    """Bytes one file takes on disk (0 once it is gone)."""
    try:
        return Path(path).lstat().st_blocks * 512
    except OSError:
        return 0


def remove_unfinished_blobs(cache_dir: Path, repo_id: str) -> int:
    """Delete a repository's half-written blobs; bytes freed. huggingface_hub writes each
    attempt to a fresh name and never resumes an old one, so none of them is worth keeping once
    no transfer of the repository runs."""
    freed = 0
    for blob in unfinished_blobs(cache_dir, repo_id):
        size = file_disk_usage(blob)
        try:
            blob.unlink()
        except FileNotFoundError:
            continue
        freed += size
    return freed


def snapshot_size(snapshot: Path) -> int:
    """Bytes a snapshot really uses: the blobs its symlinks point to."""
    snapshot = Path(snapshot)
    if not snapshot.exists():
        return 0
    blobs = {p.resolve() for p in snapshot.rglob("*") if p.is_file()}
    return sum(b.stat().st_size for b in blobs)


def remove_snapshot(cache_dir: Path, repo_id: str, commit: str, commits_still_used: set[str]) -> int:
    """Give back the disk `commit`'s snapshot uses, sparing whatever other models still need.
    Returns bytes freed.

    No other model of this repository: the whole repository folder goes (partial downloads
    included). Otherwise only the blobs this snapshot alone points to; unlinked blobs may be
    another job's download in progress, and a partial file of this one is kept for resuming."""
    repo_dir = repo_cache_dir(cache_dir, repo_id)
    if not repo_dir.exists():
        return 0
    if not commits_still_used:
        freed = tree_size(repo_dir)
        shutil.rmtree(repo_dir, ignore_errors=True)
        shutil.rmtree(Path(cache_dir) / ".locks" / repo_dir.name, ignore_errors=True)
        return freed
    if commit in commits_still_used:
        return 0
    snapshots = repo_dir / "snapshots"
    mine = {p.resolve() for p in (snapshots / commit).rglob("*") if p.is_symlink()}
    shutil.rmtree(snapshots / commit, ignore_errors=True)
    others = {p.resolve() for p in snapshots.rglob("*") if p.is_symlink()}
    freed = 0
    for blob in mine - others:
        if blob.is_file():
            freed += blob.stat().st_size
            blob.unlink()
    return freed


def remove_tree(path: Path | None) -> int:
    """Delete a folder (a quantized copy); returns bytes freed."""
    if not path:
        return 0
    path = Path(path)
    size = tree_size(path)
    shutil.rmtree(path, ignore_errors=True)
    return size
