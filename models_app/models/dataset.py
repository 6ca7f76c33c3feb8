"""A text dataset and the job that reads it into datasets/{id}/."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from ..ml import storage
from ..ml.hub import RepoFile
from .job import DeletionRefused, JobRecord


class DatasetStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"


class Dataset(JobRecord):
    """Text samples for extraction, stored normalized under datasets/{id}/ (see ml.datasets)."""

    KIND = "dataset"
    PROGRESS_FIELDS = {"progress_detail": ""}
    QUEUED, RUNNING = DatasetStatus.QUEUED, DatasetStatus.PROCESSING
    ACTIVE = (DatasetStatus.QUEUED, DatasetStatus.PROCESSING)
    DONE, FAILED, CANCELLED = DatasetStatus.READY, DatasetStatus.ERROR, DatasetStatus.CANCELLED
    SOURCES = [("upload", "Upload"), ("hub", "HuggingFace Hub")]

    name = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=SOURCES)
    source_detail = models.CharField(max_length=500, help_text="File name, or repo@revision:file")
    text_field = models.CharField(max_length=200, blank=True, default="text")
    file_format = models.CharField(max_length=10)
    status = models.CharField(
        max_length=12, choices=DatasetStatus.choices, default=DatasetStatus.QUEUED, db_index=True
    )
    progress_detail = models.CharField(max_length=255, blank=True)
    num_samples = models.IntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    preview = models.JSONField(default=list, blank=True)
    file_path = models.CharField(max_length=1024, blank=True)
    # Hub datasets are fetched by a job: where from, and the token (encrypted, erased at the end).
    hub_options = models.JSONField(default=dict, blank=True)
    encrypted_token = models.BinaryField(null=True, blank=True, editable=False)
    use_operator_token = models.BooleanField(
        default=False, help_text="Without a token of its own, the job may use the operator's Hub credentials"
    )

    def __str__(self) -> str:
        return f"{self.name} ({self.num_samples} samples)"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.num_samples:,} samples)"

    @property
    def can_retry(self) -> bool:
        return self.source == "hub" and self.status in (DatasetStatus.ERROR, DatasetStatus.CANCELLED)

    @property
    def folder(self) -> Path:
        return Path(self.file_path) if self.file_path else settings.DATASETS_DIR / str(self.pk)

    @property
    def incoming_folder(self) -> Path:
        """Where files wait to be read (an upload, a Hub download): gone when the job ends."""
        return settings.DATASETS_DIR / f"{self.pk}.incoming"

    @property
    def hub_files(self) -> list[RepoFile]:
        # Records queued before sizes were kept name their files only.
        return [
            RepoFile(f, 0) if isinstance(f, str) else RepoFile(**f) for f in self.hub_options.get("files", [])
        ]

    def job_task(self) -> tuple[str, str]:
        # Downloads' queue: reading a file is disk work, like fetching one.
        task = "fetch_hub_dataset" if self.source == "hub" else "ingest_upload"
        return f"models_app.jobs.dataset.{task}", settings.DOWNLOAD_CLUSTER

    def discard_partial_files(self) -> int:
        return storage.remove_tree(self.folder) + storage.remove_tree(self.incoming_folder)

    def delete_with_files(self, user=None) -> int:
        """Refused while extractions read it. One being read is asked to stop first; its job
        removes what it wrote when it notices the row is gone, and never writes the row back."""
        from .. import progress

        self.refuse_unless_changeable_by(user)
        if self.extractions.exists():
            raise DeletionRefused(self.in_use_message(user))
        if self.is_active:
            self.request_cancel()
        pk = self.pk
        freed = self.discard_partial_files()
        self.delete()
        progress.publish(self.KIND, pk, deleted=True)
        return freed

    def in_use_message(self, user=None) -> str:
        """Why a dataset that extractions read cannot be deleted, and who can clear the way."""
        if user is None or user.is_staff or not self.extractions.exclude(owner_id=user.pk).exists():
            return "Extractions use this dataset: delete them first."
        return "Extractions of other users use this dataset: they, or staff, must delete them first."

    def on_job_ended(self) -> None:
        Dataset.objects.filter(pk=self.pk).update(encrypted_token=None)

    @property
    def cancel_confirmation(self) -> str:
        return f"Stop adding {self.name}? What was read so far is deleted."
