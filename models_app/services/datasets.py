"""Adding datasets from a file or a Hub dataset repository, shared by the page, the API and the
CLI. Reading the samples always runs as a job (jobs.dataset): inline for the CLI and small
uploads, on the downloads queue for larger uploads and Hub repositories."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction

from .. import token_crypto
from ..ml import datasets, hub
from ..models import Dataset, DatasetStatus

# `run(job, record)` runs `job(record.pk)` in this process: directly by default; the CLI passes
# one that runs it under its progress bar, which a stop signal cancels.
JobRun = Callable[[Callable[[int], object], Dataset], object]


def _run_here(job: Callable[[int], object], record: Dataset) -> None:
    job(record.pk)


def _ingest_now(record: Dataset, files: list[Path], run: JobRun = _run_here) -> Dataset:
    """Run the ingest job here; on failure nothing is left behind and the reason is raised."""
    from ..jobs.dataset import ingest_files

    failed: list[datasets.DatasetError] = []
    try:
        run(lambda pk: ingest_files(pk, files, failed), record)
    except BaseException:  # Ctrl-C of the CLI: the job has cleaned up; the row goes too
        Dataset.objects.filter(pk=record.pk).delete()
        raise
    return _ready_or_removed(record, "Reading the file was cancelled.", failed[0].field if failed else None)


def _ready_or_removed(record: Dataset, cancelled: str, field: str | None = None) -> Dataset:
    """After a job run here (a request or the CLI): the ready record, or nothing left behind and
    the reason raised for the caller to show (at `field`, the failed reading's, if it names one)."""
    record.refresh_from_db()
    if record.status != DatasetStatus.READY:
        message = record.error_message or cancelled
        record.discard_partial_files()
        record.delete()
        raise datasets.DatasetError(message, field if record.error_message else None)
    return record


def add_from_file(
    path: Path,
    name: str,
    text_field: str = "text",
    filename: str | None = None,
    owner=None,
    run: JobRun = _run_here,
) -> Dataset:
    """Read a local file now (the CLI, and small uploads): the ready record, or nothing left
    behind and the reason raised."""
    filename = filename or Path(path).name
    record = _upload_record(filename, Path(path).stat().st_size, name, text_field, owner)
    return _ingest_now(record, [Path(path)], run)


def add_upload(uploaded, name: str, text_field: str = "text", owner=None) -> Dataset:
    """An upload from the page or the API. A request reads the file itself only when its size
    bounds the work: a small text file. A larger one, and any Parquet file (a few compressed
    bytes can stand for gigabytes of text), is moved into the data directory and read by a job
    on the downloads queue, so no request ever holds it: the record comes back queued."""
    record = _upload_record(uploaded.name, uploaded.size, name, text_field, owner)
    # Django's own bound for keeping an upload in memory: larger ones are files already.
    if uploaded.size <= settings.FILE_UPLOAD_MAX_MEMORY_SIZE and record.file_format != "parquet":
        with tempfile.TemporaryDirectory(prefix="upload-", dir=settings.FILE_UPLOAD_TEMP_DIR) as scratch:
            return _ingest_now(record, [_save(uploaded, Path(scratch))])
    try:
        _save(uploaded, record.incoming_folder)
    except BaseException:
        record.discard_partial_files()
        record.delete()
        raise
    record.enqueue()
    return record


def _upload_record(filename: str, size: int, name: str, text_field: str, owner) -> Dataset:
    fmt = datasets.detect_format(filename)
    if size > settings.MAX_UPLOAD_BYTES:
        raise datasets.DatasetError(
            f"The file is {size / 1e9:.2f} GB; the studio accepts at most "
            f"{settings.MAX_UPLOAD_BYTES / 1e9:.2f} GB per file."
        )
    return Dataset.objects.create(
        name=name or Path(filename).stem,
        source="upload",
        source_detail=filename,
        text_field=text_field or "text",
        file_format=fmt,
        owner=owner,
    )


def _save(uploaded, folder: Path) -> Path:
    """The uploaded file under `folder`, by its own name: moved when Django already spooled it to
    a file (FILE_UPLOAD_TEMP_DIR is in the data directory, so it is a rename), else written."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(uploaded.name).name
    spooled = getattr(uploaded, "temporary_file_path", lambda: None)()
    if spooled:
        shutil.move(spooled, target)
        return target
    with open(target, "wb") as out:
        for chunk in uploaded.chunks():
            out.write(chunk)
    return target


def _hub_record(
    repo_id: str,
    name: str,
    revision: str,
    pattern: str,
    text_field: str,
    token: str | None,
    keep_token: bool,
    use_operator_token: bool = True,
    owner=None,
) -> Dataset:
    """Check the repository on the Hub (API only; never inside a transaction) and create the
    dataset record, queued. `keep_token`: store the token encrypted for the job (it erases it).
    `use_operator_token`: whether, without a token, the operator's Hub credentials may be used."""
    commit, files = hub.resolve_dataset_files(
        repo_id,
        revision,
        pattern,
        token=token_crypto.hub_token(token, use_operator_token),
        endpoint=settings.HF_ENDPOINT,
    )
    formats = {datasets.detect_format(f.path) for f in files}
    if len(formats) > 1:
        raise datasets.DatasetError(
            f"The matching files mix formats ({', '.join(sorted(formats))}): narrow the file pattern."
        )
    refusal = datasets.room_refusal(sum(f.size for f in files), hub.free_disk_bytes(settings.DATASETS_DIR))
    if refusal:
        raise datasets.DatasetError(refusal)
    detail = f"{repo_id}@{revision or 'main'}" + (f":{pattern}" if pattern else "")
    return Dataset.objects.create(
        name=name or repo_id.split("/")[-1],
        source="hub",
        source_detail=detail[:500],
        text_field=text_field or "text",
        file_format=formats.pop(),
        hub_options={"repo_id": repo_id, "commit": commit, "files": [dataclasses.asdict(f) for f in files]},
        encrypted_token=token_crypto.encrypt(token) if token and keep_token else None,
        use_operator_token=use_operator_token,
        owner=owner,
    )


def add_from_hub(
    repo_id: str,
    name: str = "",
    revision: str = "main",
    pattern: str = "",
    text_field: str = "text",
    token: str | None = None,
    run: JobRun = _run_here,
) -> Dataset:
    """Synchronously (the CLI): check, download and store, as the job does."""
    from ..jobs.dataset import fetch_hub_dataset

    record = _hub_record(repo_id, name, revision, pattern, text_field, token, keep_token=True)
    try:
        run(fetch_hub_dataset, record)
    except BaseException:  # Ctrl-C of the CLI: the job has cleaned up; the row goes too
        Dataset.objects.filter(pk=record.pk).delete()
        raise
    return _ready_or_removed(record, "Adding the dataset was cancelled.")


def queue_from_hub(
    repo_id: str,
    name: str = "",
    revision: str = "main",
    pattern: str = "",
    text_field: str = "text",
    token: str | None = None,
    use_operator_token: bool = True,
    owner=None,
) -> Dataset:
    """From the page and the API: check now (errors at the field), download and store in a job."""
    record = _hub_record(
        repo_id,
        name,
        revision,
        pattern,
        text_field,
        token,
        keep_token=True,
        use_operator_token=use_operator_token,
        owner=owner,
    )
    record.enqueue()
    return record


def retry(record: Dataset, token: str | None = None, text_field: str | None = None) -> Dataset:
    """Queue a failed or cancelled Hub dataset again, reading `text_field` this time if given
    (what was wrong may have been the field). Its files are looked up on the Hub first, with the
    token the job will use: a wrong token or a repository gone is a HubError now."""
    options = record.hub_options
    hub.resolve_dataset_files(
        options["repo_id"],
        options["commit"],
        "",
        token=token_crypto.hub_token(token, record.use_operator_token),
        endpoint=settings.HF_ENDPOINT,
    )
    record.discard_partial_files()
    with transaction.atomic():
        record.prepare_retry()
        if text_field:
            record.text_field = text_field
        if token:
            record.encrypted_token = token_crypto.encrypt(token)
        record.save()
        record.enqueue()
    return record
