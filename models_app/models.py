"""The studio's records. A LanguageModel row is the source of truth for a download job: the
worker writes its phase and progress here and every page renders from it."""
from __future__ import annotations

from functools import cached_property

from django.db import models
from django.urls import reverse
from django.utils import timezone

from .ml import quantization as quant

FORMAT_CHOICES = [(fmt, quant.LABELS[fmt]) for fmt in quant.FORMATS]


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


class LanguageModel(models.Model):
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
    error_message = models.TextField(blank=True)
    phase_log = models.JSONField(default=list, blank=True)
    cancel_requested = models.BooleanField(default=False)

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
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

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

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @cached_property
    def latest_extraction(self):
        return self.extractions.select_related("dataset").order_by("-created_at", "-pk").first()

    @property
    def needs_polling(self) -> bool:
        """Unfinished work shows on the card: the download, or an extraction of this model."""
        latest = self.latest_extraction
        return self.is_active or bool(latest and latest.is_active)

    @property
    def is_stalled(self) -> bool:
        """Downloading, but no bytes have arrived for a while (progress is written per chunk)."""
        return (self.status == ModelStatus.DOWNLOADING and self.bytes_downloaded < self.bytes_total
                and (timezone.now() - self.updated_at).total_seconds() > STALL_SECONDS)

    @property
    def can_restart(self) -> bool:
        return self.status in (ModelStatus.READY, ModelStatus.ERROR, ModelStatus.CANCELLED)

    @property
    def format_differs(self) -> bool:
        return bool(self.effective_quantization) and self.effective_quantization != self.quantization

    @property
    def effective_label(self) -> str:
        return quant.LABELS.get(self.effective_quantization, "")

    @property
    def estimated_memory_by_format(self) -> dict[str, int]:
        return quant.memory_table(self.params_count or 0)

    @classmethod
    def duplicate_of(cls, repo_id: str, revision: str, fmt: str, exclude_pk: int | None = None):
        found = cls.objects.filter(repo_id=repo_id, revision=revision or "main", quantization=fmt)
        if exclude_pk:
            found = found.exclude(pk=exclude_pk)
        return found.first()

    @classmethod
    def claim(cls, pk: int, to_status: str) -> bool:
        """Move a queued job to its first running phase; False when someone else has it."""
        now = timezone.now()
        claimed = cls.objects.filter(pk=pk, status=ModelStatus.QUEUED, cancel_requested=False).update(
            status=to_status, started_at=now, updated_at=now, progress=0.0, error_message="",
        )
        return claimed == 1


class DatasetStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    ERROR = "error", "Error"


class Dataset(models.Model):
    """Text samples for extraction, stored normalized under datasets/{id}/ (see ml.datasets)."""

    SOURCES = [("upload", "Upload"), ("hub", "HuggingFace Hub")]

    name = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=SOURCES)
    source_detail = models.CharField(max_length=500, help_text="File name, or repo@revision:file")
    text_field = models.CharField(max_length=200, blank=True, default="text")
    file_format = models.CharField(max_length=10)
    status = models.CharField(max_length=12, choices=DatasetStatus.choices,
                              default=DatasetStatus.PROCESSING, db_index=True)
    error_message = models.TextField(blank=True)
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
    def is_active(self) -> bool:
        return self.status == DatasetStatus.PROCESSING

    @property
    def label(self) -> str:
        return f"{self.name} ({self.num_samples:,} samples)"


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


class Extraction(models.Model):
    """One activation extraction job and, once completed, its files and statistics."""

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
    error_message = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    output_path = models.CharField(max_length=1024, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"Extraction {self.pk} of {self.model.name}"

    @property
    def is_active(self) -> bool:
        return self.status in EXTRACTION_ACTIVE

    @property
    def statistics(self) -> dict:
        """Per-(layer, hook) statistics, as written to metadata.json."""
        return self.metadata.get("statistics", {})

    @classmethod
    def claim(cls, pk: int) -> bool:
        now = timezone.now()
        return cls.objects.filter(pk=pk, status=ExtractionStatus.QUEUED, cancel_requested=False).update(
            status=ExtractionStatus.LOADING, started_at=now) == 1
