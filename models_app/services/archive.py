"""A folder's files as one uncompressed .tar, streamed: each file is read a block at a time while
the response is sent, so a download of many gigabytes holds one block in memory. The length is
known before the first byte (`tar_size`), so a browser shows the download's progress.

tarfile itself writes a whole member per call (its stream mode included), so the archive is put
together here from its parts: each member's header from tarfile.TarInfo, the file's bytes, zeros
up to the next 512-byte block, and two zero blocks at the end."""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

BLOCK = tarfile.BLOCKSIZE  # 512
READ_BYTES = 1 << 20


def _header(path: Path, folder_name: str) -> tuple[bytes, int]:
    stat = path.stat()
    info = tarfile.TarInfo(f"{folder_name}/{path.name}")
    info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT), stat.st_size


def _padding(size: int) -> int:
    return -size % BLOCK


def tar_size(files: Iterable[Path], folder_name: str) -> int:
    """The archive's length in bytes: what tar_stream(files, folder_name) sends."""
    total = 2 * BLOCK
    for path in files:
        header, size = _header(path, folder_name)
        total += len(header) + size + _padding(size)
    return total


def tar_stream(files: Iterable[Path], folder_name: str) -> Iterator[bytes]:
    """The archive of `files`, each under `folder_name/`, as the chunks to send."""
    for path in files:
        header, size = _header(path, folder_name)
        yield header
        left = size
        with open(path, "rb") as handle:
            while left > 0:
                chunk = handle.read(min(READ_BYTES, left))
                if not chunk:  # shorter than its header says: the archive stays well-formed
                    chunk = bytes(min(READ_BYTES, left))
                left -= len(chunk)
                yield chunk
        yield bytes(_padding(size))
    yield bytes(2 * BLOCK)
