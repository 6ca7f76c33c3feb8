"""Adding datasets from a file or a Hub dataset repository, shared by the page and the CLI."""
from __future__ import annotations

import shutil
import tempfile
from itertools import chain
from pathlib import Path

from django.conf import settings
from django.db import transaction

from . import secrets
from .ml import datasets, hub
from .models import Dataset, DatasetStatus


def _ingest(record: Dataset, files: list[Path], fmt: str, keep_on_error: bool = False) -> Dataset:
    """Store the files' samples under datasets/{id}/; on any problem no file is left behind, and
    the record goes too unless a job keeps it to show the error."""
    folder = settings.DATASETS_DIR / str(record.pk)
    try:
        samples = chain.from_iterable(datasets.iter_samples(f, fmt, record.text_field) for f in files)
        stored = datasets.store(samples, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        if not keep_on_error:
            record.delete()
        raise
    record.status = DatasetStatus.READY
    record.num_samples, record.size_bytes = stored.samples, stored.size_bytes
    record.preview, record.file_path = stored.preview, str(folder)
    record.save()
    return record


def add_from_file(path: Path, name: str, text_field: str = "text", filename: str | None = None) -> Dataset:
    filename = filename or Path(path).name
    fmt = datasets.detect_format(filename)
    size = Path(path).stat().st_size
    if size > settings.MAX_UPLOAD_BYTES:
        raise datasets.DatasetError(f"The file is {size / 1e9:.2f} GB; the studio accepts at most "
                                    f"{settings.MAX_UPLOAD_BYTES / 1e9:.2f} GB per file.")
    record = Dataset.objects.create(name=name or Path(filename).stem, source="upload",
                                    source_detail=filename, text_field=text_field or "text",
                                    file_format=fmt)
    return _ingest(record, [Path(path)], fmt)


def add_from_upload(uploaded, name: str, text_field: str = "text") -> Dataset:
    """A small upload Django kept in memory: copy it to a temporary file in chunks, then ingest."""
    with tempfile.TemporaryDirectory(prefix="mistudio-upload-") as scratch:
        path = Path(scratch) / Path(uploaded.name).name
        with open(path, "wb") as out:
            for chunk in uploaded.chunks():
                out.write(chunk)
        return add_from_file(path, name, text_field, uploaded.name)


def _hub_record(repo_id: str, name: str, revision: str, pattern: str, text_field: str,
                token: str | None, keep_token: bool) -> Dataset:
    """Check the repository on the Hub (API only) and create the dataset record, still empty.
    `keep_token`: store the token encrypted for the job that fetches the files (it erases it)."""
    commit, names = hub.resolve_dataset_files(repo_id, revision, pattern, token=token,
                                              endpoint=settings.HF_ENDPOINT)
    formats = {datasets.detect_format(n) for n in names}
    if len(formats) > 1:
        raise datasets.DatasetError(f"The matching files mix formats ({', '.join(sorted(formats))}): "
                                    "narrow the file pattern.")
    detail = f"{repo_id}@{revision or 'main'}" + (f":{pattern}" if pattern else "")
    return Dataset.objects.create(
        name=name or repo_id.split("/")[-1], source="hub", source_detail=detail[:500],
        text_field=text_field or "text", file_format=formats.pop(),
        hub_options={"repo_id": repo_id, "commit": commit, "files": names},
        encrypted_token=secrets.encrypt(token) if token and keep_token else None)


def fetch_and_ingest(record: Dataset, token: str | None, keep_on_error: bool = False) -> Dataset:
    """Download a Hub dataset record's files and store their samples."""
    options = record.hub_options
    with tempfile.TemporaryDirectory(prefix="mistudio-dataset-") as scratch:
        try:
            files = hub.download_dataset_files(options["repo_id"], options["commit"], options["files"],
                                               Path(scratch), token=token, endpoint=settings.HF_ENDPOINT)
        except BaseException:
            if not keep_on_error:
                record.delete()
            raise
        return _ingest(record, files, record.file_format, keep_on_error)


def add_from_hub(repo_id: str, name: str = "", revision: str = "main", pattern: str = "",
                 text_field: str = "text", token: str | None = None) -> Dataset:
    """Synchronously (the CLI): check, download and store."""
    record = _hub_record(repo_id, name, revision, pattern, text_field, token, keep_token=False)
    return fetch_and_ingest(record, token)


def queue_from_hub(repo_id: str, name: str = "", revision: str = "main", pattern: str = "",
                   text_field: str = "text", token: str | None = None) -> Dataset:
    """From the page: check now (errors at the field), download and store in a job."""
    from django_q.tasks import async_task

    with transaction.atomic():
        record = _hub_record(repo_id, name, revision, pattern, text_field, token, keep_token=True)
        transaction.on_commit(lambda: async_task("models_app.dataset_jobs.fetch_hub_dataset", record.pk,
                                                 cluster=settings.DOWNLOAD_CLUSTER,
                                                 task_name=f"dataset-{record.pk}"))
    return record


def delete(record: Dataset) -> int:
    """Remove a dataset and its files; refused while an extraction uses it."""
    folder = Path(record.file_path) if record.file_path else settings.DATASETS_DIR / str(record.pk)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
    record.delete()
    shutil.rmtree(folder, ignore_errors=True)
    return size
