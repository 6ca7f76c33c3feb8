"""Dataset jobs: a Hub dataset fetched on the downloads queue, and the ingest (reading samples
into datasets/{id}/) of uploads: on the downloads queue, or inline through the same runner for
the CLI and small uploads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path

from django.conf import settings

from .. import token_crypto
from ..ml import datasets, download_process, hub, storage
from ..models import Dataset
from .runner import Job, run

CHECK_EVERY = 256  # samples between cancel checks and progress lines


def fetch_hub_dataset(dataset_pk: int) -> str:
    return run(Dataset, dataset_pk, _fetch)


def ingest_files(dataset_pk: int, files: list[Path], failed: list | None = None) -> str:
    """Read local files into a queued dataset record, in this process, as a job. `failed`, if
    given, receives the DatasetError that failed the read: the record keeps only its message, and
    a caller in this process (a form) also shows it at the field it is about."""

    def body(job: Job) -> dict:
        try:
            return _ingest(job, Dataset.objects.get(pk=job.pk), files)
        except datasets.DatasetError as exc:
            if failed is not None:
                failed.append(exc)
            raise

    return run(Dataset, dataset_pk, body)


def ingest_upload(dataset_pk: int) -> str:
    """Read an uploaded file that waits in the record's incoming folder (the downloads queue)."""
    return run(Dataset, dataset_pk, _ingest_upload)


def _ingest_upload(job: Job) -> dict:
    record = Dataset.objects.get(pk=job.pk)
    fields = _ingest(job, record, sorted(record.incoming_folder.iterdir()))
    storage.remove_tree(record.incoming_folder)
    return fields


def _fetch(job: Job) -> dict:
    """Download in a child process (a cancel stops it at once), into the data directory, once
    the disk is known to hold the files and the samples read from them."""
    record = Dataset.objects.get(pk=job.pk)
    options, files = record.hub_options, record.hub_files
    given = token_crypto.decrypt(record.encrypted_token)
    if given:
        job.secrets.append(given)
    token = token_crypto.hub_token(given, record.use_operator_token)  # False: not the operator's either
    refusal = datasets.room_refusal(sum(f.size for f in files), hub.free_disk_bytes(settings.DATASETS_DIR))
    if refusal:
        raise datasets.DatasetError(refusal)
    job.tracker.update(force=True, progress_detail=f"Downloading {len(files)} file(s)")
    paths = download_process.download_dataset_in_child(
        options["repo_id"],
        options["commit"],
        files,
        record.incoming_folder,
        token=token,
        endpoint=settings.HF_ENDPOINT,
        should_cancel=job.should_cancel,
        on_progress=lambda p: job.tracker.update(progress_detail=_downloaded(p)),
    )
    fields = _ingest(job, record, paths)
    storage.remove_tree(record.incoming_folder)
    return fields


def _downloaded(progress: hub.DownloadProgress) -> str:
    return f"Downloading: {progress.done / 1e6:,.1f} of {progress.total / 1e6:,.1f} MB"


def _ingest(job: Job, record: Dataset, files: list[Path]) -> dict:
    job.tracker.update(force=True, progress_detail="Reading samples")
    samples = chain.from_iterable(
        datasets.iter_samples(f, record.file_format, record.text_field) for f in files
    )
    stored = datasets.store(_checked(job, samples), record.folder)
    return {
        "num_samples": stored.samples,
        "size_bytes": stored.size_bytes,
        "preview": stored.preview,
        "file_path": str(record.folder),
        "progress_detail": "",
    }


def _checked(job: Job, samples: Iterable[str]) -> Iterator[str]:
    for count, text in enumerate(samples, 1):
        if count % CHECK_EVERY == 0:
            job.check()
            job.tracker.update(progress_detail=f"Read {count:,} samples")
        yield text
