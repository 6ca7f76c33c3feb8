"""The studio's records. Each job's row is the source of truth for that job: the worker writes
its phase, progress and heartbeat here, and every page (and every live update) renders from it.
The paths a job writes and the cleanup of what it leaves behind live here too."""
from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from django.db import models
from django.urls import reverse
from django.utils import timezone

from .ml import quantization as quant, storage

FORMAT_CHOICES = [(fmt, quant.LABELS[fmt]) for fmt in quant.FORMATS]


LOST_WORKER_MESSAGE = "The worker stopped unexpectedly. Retry it."


def stale_after_seconds() -> int:
    from django.conf import settings

    return settings.JOB_STALE_SECONDS


class JobRecord(models.Model):
    """What every background job's record shares: the runner (models_app.jobs.runner) claims it,
    beats its heartbeat while it works, and always leaves it in a final state.

    Subclasses name their statuses (QUEUED, RUNNING, ACTIVE, FAILED, CANCELLED, DONE) and say
    which files a cancelled or failed job leaves behind (`discard_partial_files`)."""

    cancel_requested = models.BooleanField(default=False)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker started it")
    last_error = models.TextField(blank=True, help_text="The previous attempt's error, kept on retry")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the running job")
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    KIND: ClassVar[str]
    QUEUED: ClassVar[str]
    RUNNING: ClassVar[str]  # the first phase a claimed job enters
    ACTIVE: ClassVar[tuple[str, ...]]
    DONE: ClassVar[str]
    FAILED: ClassVar[str]
    CANCELLED: ClassVar[str]

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        self.updated_at = timezone.now()  # the live watcher finds changed rows by this column
        super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def is_finished(self) -> bool:
        return not self.is_active

    @classmethod
    def running_statuses(cls) -> tuple[str, ...]:
        return tuple(s for s in cls.ACTIVE if s != cls.QUEUED)

    @classmethod
    def set(cls, pk: int, **fields: Any) -> int:
        """An UPDATE that also stamps updated_at, so open pages hear of it."""
        return cls.objects.filter(pk=pk).update(updated_at=timezone.now(), **fields)

    @classmethod
    def claim(cls, pk: int, worker: str = "") -> bool:
        """Queued -> first running phase, atomically: False when another worker has it or it was
        cancelled while it waited."""
        now = timezone.now()
        return cls.objects.filter(pk=pk, status=cls.QUEUED, cancel_requested=False).update(
            status=cls.RUNNING, started_at=now, heartbeat_at=now, updated_at=now, worker=worker,
            attempts=models.F("attempts") + 1, error_message="") == 1

    @classmethod
    def fail_stale(cls) -> list[int]:
        """Fail running jobs whose heartbeat stopped: their worker was killed. Anyone may call
        this (pages, workers, the live watcher); the conditional UPDATE makes it safe to race.
        A cancel asked of a dead job ends it as cancelled, with its partial files removed."""
        cutoff = timezone.now() - timedelta(seconds=stale_after_seconds())
        candidates = cls.objects.filter(status__in=cls.running_statuses()).filter(
            models.Q(heartbeat_at__lt=cutoff) | models.Q(heartbeat_at__isnull=True, updated_at__lt=cutoff))
        ended = []
        for record in candidates:
            cancelled = record.cancel_requested
            fields = {"status": cls.CANCELLED} if cancelled else {
                "status": cls.FAILED, "error_message": LOST_WORKER_MESSAGE}
            won = cls.objects.filter(pk=record.pk, status=record.status, heartbeat_at=record.heartbeat_at) \
                .update(completed_at=timezone.now(), updated_at=timezone.now(), **fields)
            if won:
                ended.append(record.pk)
                if cancelled:
                    record.discard_partial_files()
                record.on_job_ended()
        return ended

    def request_cancel(self) -> str | None:
        """Cancel now if queued, else ask the running job to stop; the refusal message if the job
        has already finished."""
        if self.is_finished:
            return (f"This job has already ended ({self.get_status_display().lower()}): "
                    "there is nothing to cancel.")
        type(self).objects.filter(pk=self.pk, status=self.QUEUED).update(
            status=self.CANCELLED, cancel_requested=True, completed_at=timezone.now(),
            updated_at=timezone.now())
        type(self).objects.filter(pk=self.pk, status__in=self.running_statuses()).update(
            cancel_requested=True, updated_at=timezone.now())
        self.refresh_from_db()
        if self.status == self.CANCELLED:
            self.on_job_ended()
        return None

    def prepare_retry(self) -> None:
        """Back to the queue, keeping the history: attempts count on, the last error stays."""
        if self.error_message:
            self.last_error = self.error_message
        self.status = self.QUEUED
        self.cancel_requested = False
        self.error_message = ""
        self.heartbeat_at = self.started_at = self.completed_at = None
        self.worker = ""

    def discard_partial_files(self) -> int:
        """Remove what an unfinished job wrote; bytes freed."""
        return 0

    def on_job_ended(self) -> None:
        """Hook for a record to drop what only a running job needs (an access token)."""

    @property
    def cancel_confirmation(self) -> str:
        return "Cancel this job?"


class ModelStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    DOWNLOADING = "downloading", "Downloading"
    LOADING = "loading", "Loading"
    QUANTIZING = "quantizing", "Quantizing"
    READY = "ready", "Ready"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"


STALL_SECONDS = 10
ACTIVE_STATUSES = (ModelStatus.QUEUED, ModelStatus.DOWNLOADING, ModelStatus.LOADING,
                   ModelStatus.QUANTIZING)
DOWNLOAD_PHASES = (ModelStatus.QUEUED, ModelStatus.DOWNLOADING, ModelStatus.LOADING,
                   ModelStatus.QUANTIZING, ModelStatus.READY)
# One bar for the whole job: each phase fills its own stretch, so the bar never goes back.
PHASE_SPAN = {ModelStatus.DOWNLOADING: (0.0, 85.0), ModelStatus.LOADING: (85.0, 92.0),
              ModelStatus.QUANTIZING: (92.0, 100.0)}


def overall_progress(status: str, fraction: float) -> float:
    start, end = PHASE_SPAN.get(status, (0.0, 100.0))
    return round(start + (end - start) * min(max(fraction, 0.0), 1.0), 2)


class LanguageModel(JobRecord):
    KIND = "model"
    QUEUED, RUNNING, ACTIVE = ModelStatus.QUEUED, ModelStatus.DOWNLOADING, ACTIVE_STATUSES
    DONE, FAILED, CANCELLED = ModelStatus.READY, ModelStatus.ERROR, ModelStatus.CANCELLED

    name = models.CharField(max_length=200)
    repo_id = models.CharField(max_length=96, db_index=True)
    revision = models.CharField(max_length=255, default="main")
    commit_sha = models.CharField(max_length=64, blank=True)
    architecture = models.CharField(max_length=100, blank=True, db_index=True)
    params_count = models.BigIntegerField(null=True, blank=True)
    quantization = models.CharField(max_length=8, choices=FORMAT_CHOICES, default=quant.DEFAULT_FORMAT)
    effective_quantization = models.CharField(max_length=8, choices=FORMAT_CHOICES, blank=True)
    quantization_note = models.TextField(blank=True, help_text="Why the effective format differs")
    trust_remote_code = models.BooleanField(default=False)
    gated = models.BooleanField(default=False, help_text="The repository needs an accepted license and a token")

    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.QUEUED,
                              db_index=True)
    progress = models.FloatField(default=0.0)
    phase_detail = models.CharField(max_length=255, blank=True)
    bytes_downloaded = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    speed_bps = models.FloatField(default=0.0)
    eta_seconds = models.FloatField(null=True, blank=True)
    stalled_since = models.DateTimeField(null=True, blank=True, help_text="No data arriving since")
    phase_log = models.JSONField(default=list, blank=True)

    file_path = models.CharField(max_length=1024, blank=True)
    quantized_path = models.CharField(max_length=1024, blank=True)
    architecture_config = models.JSONField(default=dict, blank=True)
    architecture_summary = models.JSONField(default=dict, blank=True)
    memory_required_bytes = models.BigIntegerField(null=True, blank=True)
    memory_footprint_bytes = models.BigIntegerField(null=True, blank=True)
    disk_size_bytes = models.BigIntegerField(null=True, blank=True)
    # The access token for a gated repo, encrypted (see models_app.secrets); erased when the job ends.
    encrypted_token = models.BinaryField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["repo_id", "revision", "quantization"],
                                    name="unique_model_repo_revision_format"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_quantization_display()})"

    def get_absolute_url(self) -> str:
        return reverse("models_app:card", args=[self.pk])

    @cached_property
    def latest_extraction(self):
        return self.extractions.select_related("dataset").order_by("-created_at", "-pk").first()

    @property
    def running_extractions(self):
        return self.extractions.filter(status__in=EXTRACTION_ACTIVE)

    @property
    def needs_polling(self) -> bool:
        """Unfinished work shows on the card: the download, or an extraction of this model."""
        latest = self.latest_extraction
        return self.is_active or bool(latest and latest.is_active)

    @property
    def is_stalled(self) -> bool:
        """Downloading, but no bytes have arrived for STALL_SECONDS (the job says so)."""
        return self.status == ModelStatus.DOWNLOADING and self.stalled_since is not None

    @property
    def can_restart(self) -> bool:
        return self.status in (ModelStatus.READY, ModelStatus.ERROR, ModelStatus.CANCELLED)

    @property
    def phase_steps(self) -> list[tuple[str, str]]:
        """(label, state) for each phase of the job, state in done / current / todo: a phase
        that passed in a blink is still shown as passed."""
        seen = {entry.get("status") for entry in self.phase_log or []}
        steps = []
        for status in DOWNLOAD_PHASES[1:]:
            if status == self.status:
                state = "done" if status == ModelStatus.READY else "current"
            elif status in seen:
                state = "done"
            else:
                state = "todo"
            steps.append((ModelStatus(status).label, state))
        return steps

    @property
    def format_differs(self) -> bool:
        return bool(self.effective_quantization) and self.effective_quantization != self.quantization

    @property
    def effective_label(self) -> str:
        return quant.LABELS.get(self.effective_quantization, "")

    @property
    def estimated_memory_by_format(self) -> dict[str, int]:
        return quant.memory_table(self.params_count or 0)

    @property
    def cancel_confirmation(self) -> str:
        return (f"Cancel the download of {self.name}? The files downloaded so far and any "
                "quantized copy are deleted.")

    @classmethod
    def duplicate_of(cls, repo_id: str, revision: str, fmt: str, exclude_pk: int | None = None):
        found = cls.objects.filter(repo_id=repo_id, revision=revision or "main", quantization=fmt)
        if exclude_pk:
            found = found.exclude(pk=exclude_pk)
        return found.first()

    # Files. The HF cache is shared between records of the same repo, so a record only removes
    # the blobs no other record's commit still uses.
    def quantized_dir(self, fmt: str | None = None) -> Path:
        from django.conf import settings

        return settings.QUANTIZED_DIR / f"{self.pk}_{fmt or self.quantization}"

    def release_quantized(self) -> int:
        from django.conf import settings

        return sum(storage.remove_tree(d) for d in settings.QUANTIZED_DIR.glob(f"{self.pk}_*"))

    def release_files(self) -> int:
        """Remove the record's quantized copies and every cache file no other model uses."""
        from django.conf import settings

        freed = self.release_quantized()
        if self.commit_sha:
            others = LanguageModel.objects.filter(repo_id=self.repo_id).exclude(pk=self.pk)
            in_use = set(others.exclude(commit_sha="").values_list("commit_sha", flat=True))
            freed += storage.remove_snapshot(settings.HF_CACHE_DIR, self.repo_id, self.commit_sha, in_use)
        return freed

    def discard_partial_files(self) -> int:
        # Re-read first: the job may have resolved the revision to a newer commit.
        commit = LanguageModel.objects.filter(pk=self.pk).values_list("commit_sha", flat=True).first()
        self.commit_sha = commit if commit is not None else self.commit_sha
        return self.release_files()

    def on_job_ended(self) -> None:
        LanguageModel.objects.filter(pk=self.pk).update(encrypted_token=None)


class DatasetStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"


class Dataset(JobRecord):
    """Text samples for extraction, stored normalized under datasets/{id}/ (see ml.datasets)."""

    KIND = "dataset"
    QUEUED, RUNNING = DatasetStatus.QUEUED, DatasetStatus.PROCESSING
    ACTIVE = (DatasetStatus.QUEUED, DatasetStatus.PROCESSING)
    DONE, FAILED, CANCELLED = DatasetStatus.READY, DatasetStatus.ERROR, DatasetStatus.CANCELLED
    SOURCES = [("upload", "Upload"), ("hub", "HuggingFace Hub")]

    name = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=SOURCES)
    source_detail = models.CharField(max_length=500, help_text="File name, or repo@revision:file")
    text_field = models.CharField(max_length=200, blank=True, default="text")
    file_format = models.CharField(max_length=10)
    status = models.CharField(max_length=12, choices=DatasetStatus.choices,
                              default=DatasetStatus.QUEUED, db_index=True)
    progress_detail = models.CharField(max_length=255, blank=True)
    num_samples = models.IntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    preview = models.JSONField(default=list, blank=True)
    file_path = models.CharField(max_length=1024, blank=True)
    # Hub datasets are fetched by a job: where from, and the token (encrypted, erased at the end).
    hub_options = models.JSONField(default=dict, blank=True)
    encrypted_token = models.BinaryField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]

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
        from django.conf import settings

        return Path(self.file_path) if self.file_path else settings.DATASETS_DIR / str(self.pk)

    def discard_partial_files(self) -> int:
        return storage.remove_tree(self.folder)

    def on_job_ended(self) -> None:
        Dataset.objects.filter(pk=self.pk).update(encrypted_token=None)

    @property
    def cancel_confirmation(self) -> str:
        return f"Stop adding {self.name}? What was read so far is deleted."


class ExtractionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    LOADING = "loading", "Loading"
    EXTRACTING = "extracting", "Extracting"
    SAVING = "saving", "Saving"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


EXTRACTION_ACTIVE = (ExtractionStatus.QUEUED, ExtractionStatus.LOADING, ExtractionStatus.EXTRACTING,
                     ExtractionStatus.SAVING)


class Extraction(JobRecord):
    """One activation extraction job and, once completed, its files and statistics."""

    KIND = "extraction"
    QUEUED, RUNNING, ACTIVE = ExtractionStatus.QUEUED, ExtractionStatus.LOADING, EXTRACTION_ACTIVE
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
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]

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
        from django.conf import settings

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


JOB_KINDS: dict[str, type[JobRecord]] = {cls.KIND: cls for cls in (LanguageModel, Dataset, Extraction)}
