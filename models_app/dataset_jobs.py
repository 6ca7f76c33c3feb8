"""The Hub dataset task (downloads queue): fetch the files, store the samples, erase the token."""
from __future__ import annotations

import logging

from . import dataset_services, secrets
from .ml.datasets import DatasetError
from .ml.hub import HubError
from .models import Dataset, DatasetStatus

log = logging.getLogger(__name__)


def fetch_hub_dataset(dataset_pk: int) -> str:
    record = Dataset.objects.filter(pk=dataset_pk, status=DatasetStatus.PROCESSING).first()
    if record is None:
        return "not processing"
    token = secrets.decrypt(record.encrypted_token)
    try:
        dataset_services.fetch_and_ingest(record, token, keep_on_error=True)
        return DatasetStatus.READY
    except Exception as exc:  # the record stays, in error, to say what went wrong
        message = getattr(exc, "message", None) if isinstance(exc, HubError) else (
            str(exc) if isinstance(exc, DatasetError) else f"Unexpected error ({type(exc).__name__}): {exc}")
        log.warning("dataset %s failed: %s", dataset_pk, message)
        Dataset.objects.filter(pk=dataset_pk).update(status=DatasetStatus.ERROR, error_message=message)
        return DatasetStatus.ERROR
    finally:
        Dataset.objects.filter(pk=dataset_pk).update(encrypted_token=None)
