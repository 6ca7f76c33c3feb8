"""An activation extraction job and, once completed, its files and statistics."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from ..ml import storage
from .dataset import Dataset
from .job import JobRecord
from .language_model import LanguageModel


class ExtractionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    LOADING = "loading", "Loading"
    EXTRACTING = "extracting", "Extracting"
    SAVING = "saving", "Saving"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"



class Extraction(JobRecord):
    """One activation extraction job and, once completed, its files and statistics."""

    KIND = "extraction"
    QUEUED, RUNNING = ExtractionStatus.QUEUED, ExtractionStatus.LOADING
    ACTIVE = (ExtractionStatus.QUEUED, ExtractionStatus.LOADING, ExtractionStatus.EXTRACTING,
              ExtractionStatus.SAVING)
    DONE, FAILED, CANCELLED = (ExtractionStatus.COMPLETED, ExtractionStatus.FAILED,
                               ExtractionStatus.CANCELLED)

    model = models.ForeignKey(LanguageModel, on_delete=models.CASCADE, related_name="extractions")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="extractions")
    layers = models.JSONField(default=list)
    hooks = models.JSONField(default=list)
    batch_size = models.IntegerField(default=8)
    max_samples = models.IntegerField(null=True, blank=True)
    context_length = models.IntegerField(default=128)
    top_k = models.IntegerField(default=10)
    dtype = models.CharField(max_length=10, default="float16")

    status = models.CharField(max_length=12, choices=ExtractionStatus.choices,
                              default=ExtractionStatus.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0)
    samples_done = models.IntegerField(default=0)
    samples_total = models.IntegerField(default=0)
    tokens_per_second = models.FloatField(default=0.0)
    eta_seconds = models.FloatField(null=True, blank=True)
    bytes_written = models.BigIntegerField(default=0)
    current_batch_size = models.IntegerField(null=True, blank=True)
    output_path = models.CharField(max_length=1024, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"Extraction {self.pk} of {self.model.name}"

    @property
    def statistics(self) -> dict:
        """Per-(layer, hook) statistics, as written to metadata.json."""
        return self.metadata.get("statistics", {})

    @property
    def can_retry(self) -> bool:
        return self.status in (ExtractionStatus.FAILED, ExtractionStatus.CANCELLED)

    @property
    def output_dir(self) -> Path:
        return settings.ACTIVATIONS_DIR / str(self.pk)

    def discard_partial_files(self) -> int:
        return storage.remove_tree(self.output_dir)

    def prepare_retry(self) -> None:
        super().prepare_retry()
        self.progress, self.samples_done, self.bytes_written = 0.0, 0, 0
        self.tokens_per_second, self.eta_seconds, self.current_batch_size = 0.0, None, None
        self.metadata = {}

    @property
    def cancel_confirmation(self) -> str:
        return f"Cancel extraction {self.pk}? Its activation files written so far are deleted."

