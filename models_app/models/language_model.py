"""A downloaded model: its download job, its formats and the files it holds in the HF cache."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.urls import reverse

from ..ml import quantization as quant
from ..ml import storage
from ..ml.architecture import dimensions
from .job import DeletionRefused, JobRecord, StillRunning

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
REMOTE_CODE_OFF = (
    "Repository code is not allowed on this studio (the operator has not set "
    "MISTUDIO_ALLOW_REMOTE_CODE=1), and this model runs its repository's own code."
)
DOWNLOAD_PHASES = (
    ModelStatus.QUEUED,
    ModelStatus.DOWNLOADING,
    ModelStatus.LOADING,
    ModelStatus.QUANTIZING,
    ModelStatus.READY,
)
# One bar for the whole job: each phase fills its own stretch, so the bar never goes back.
PHASE_SPAN: dict[str, tuple[float, float]] = {
    ModelStatus.DOWNLOADING: (0.0, 85.0),
    ModelStatus.LOADING: (85.0, 92.0),
    ModelStatus.QUANTIZING: (92.0, 100.0),
}


def overall_progress(status: str, fraction: float) -> float:
    start, end = PHASE_SPAN.get(status, (0.0, 100.0))
    return round(start + (end - start) * min(max(fraction, 0.0), 1.0), 2)


class LanguageModel(JobRecord):
    KIND = "model"
    PROGRESS_FIELDS = {
        "progress": 0.0,
        "bytes_downloaded": 0,
        "speed_bps": 0.0,
        "eta_seconds": None,
        "phase_detail": "",
    }
    QUEUED, RUNNING = ModelStatus.QUEUED, ModelStatus.DOWNLOADING
    ACTIVE = DOWNLOAD_PHASES[:-1]  # every phase before ready
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
    gated = models.BooleanField(
        default=False, help_text="The repository needs an accepted license and a token"
    )
    use_operator_token = models.BooleanField(
        default=False, help_text="Without a token of its own, the job may use the operator's Hub credentials"
    )

    status = models.CharField(
        max_length=16, choices=ModelStatus.choices, default=ModelStatus.QUEUED, db_index=True
    )
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
    # The access token for a gated repo, encrypted (see models_app.token_crypto); erased when the job ends.
    encrypted_token = models.BinaryField(null=True, blank=True, editable=False)

    class Meta(JobRecord.Meta):
        constraints = [
            # Per owner: a private studio keeps each user's downloads apart (Owned.alike_for);
            # a shared one checks the whole studio before creating.
            models.UniqueConstraint(
                Coalesce("owner", Value(0)),
                "repo_id",
                "revision",
                "quantization",
                name="unique_model_repo_revision_format_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_quantization_display()})"

    def get_absolute_url(self) -> str:
        return reverse("models_app:card", args=[self.pk])

    # What the card tells of the model's extractions, set for whoever reads it by
    # `summarize_extractions` (nothing until then: never another user's, in a private studio).
    latest_extraction = None
    completed_extraction_count = 0

    @classmethod
    def summarize_extractions(cls, records, viewer=None) -> None:
        """Set each record's latest extraction and count of completed ones, among the
        extractions `viewer` may see (None: all), in three queries for any number of records."""
        from .extraction import Extraction

        records = list(records)
        visible = Extraction.objects.all() if viewer is None else Extraction.objects.visible_to(viewer)
        mine = visible.filter(model__in=records)
        counts = dict(
            mine.filter(status="completed")
            .values("model")
            .annotate(n=models.Count("pk"))
            .values_list("model", "n")
        )
        newest = visible.filter(model=models.OuterRef("pk")).order_by("-created_at", "-pk").values("pk")[:1]
        latest = dict(
            cls.objects.filter(pk__in=[r.pk for r in records])
            .annotate(latest=models.Subquery(newest))
            .values_list("pk", "latest")
        )
        found = Extraction.objects.select_related("dataset").in_bulk([pk for pk in latest.values() if pk])
        for record in records:
            record.completed_extraction_count = counts.get(record.pk, 0)
            record.latest_extraction = found.get(latest.get(record.pk))

    @property
    def running_extractions(self):
        return self.extractions.filter(status__in=self.extractions.model.ACTIVE)

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
    def remote_code_refusal(self) -> str:
        """Why this model may not be built now, or "". Its repository's Python runs at every load,
        not only at the download, so the operator's switch is read at every load."""
        return REMOTE_CODE_OFF if self.trust_remote_code and not settings.ALLOW_REMOTE_CODE else ""

    def check_remote_code(self) -> None:
        """Refuse to load this model while repository code is turned off (jobs call it)."""
        from ..ml.hub import HubError

        if self.remote_code_refusal:
            raise HubError(self.remote_code_refusal)

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
    def num_layers(self) -> int:
        """Decoder layers, as its config names them in any family (0 when it names none)."""
        return int(self._dimensions.get("num_layers") or 0)

    @property
    def hidden_size(self) -> int:
        return int(self._dimensions.get("hidden_size") or 0)

    @property
    def vocab_size(self) -> int:
        return int(self._dimensions.get("vocab_size") or 0)

    @property
    def max_position(self) -> int | None:
        """The most tokens it reads at once, when its config says."""
        return self._dimensions.get("max_position")

    @property
    def _dimensions(self) -> dict:
        return dimensions(self.architecture_config or {})

    @property
    def cancel_confirmation(self) -> str:
        return (
            f"Cancel the download of {self.name}? The files downloaded so far and any "
            "quantized copy are deleted."
        )

    @classmethod
    def duplicate_of(cls, repo_id: str, revision: str, fmt: str, owner=None, exclude_pk: int | None = None):
        """The record a download of this repository, revision and format by `owner` would repeat."""
        found = cls.objects.alike_for(owner).filter(
            repo_id=repo_id, revision=revision or "main", quantization=fmt
        )
        if exclude_pk:
            found = found.exclude(pk=exclude_pk)
        return found.first()

    # Files. The HF cache is shared between records of the same repo, so a record only removes
    # the blobs no other record's commit still uses.
    def quantized_dir(self, fmt: str | None = None) -> Path:
        return settings.QUANTIZED_DIR / f"{self.pk}_{fmt or self.quantization}"

    def release_quantized(self) -> int:
        return sum(storage.remove_tree(d) for d in settings.QUANTIZED_DIR.glob(f"{self.pk}_*"))

    def release_files(self) -> int:
        """Remove the record's quantized copies and every cache file no other model uses."""
        freed = self.release_quantized()
        if self.commit_sha:
            others = LanguageModel.objects.filter(repo_id=self.repo_id).exclude(pk=self.pk)
            in_use = set(others.exclude(commit_sha="").values_list("commit_sha", flat=True))
            freed += storage.remove_snapshot(settings.HF_CACHE_DIR, self.repo_id, self.commit_sha, in_use)
        return freed + self.release_unfinished_blobs()

    def delete_with_files(self, user=None) -> int:
        """The model, its files and its extractions' files. Its download, and every extraction of
        it, must have ended; another user's extractions go with it only if staff asks."""
        from .. import progress
        from ..jobs.lost import check_lost_jobs

        self.refuse_unless_changeable_by(user)
        check_lost_jobs()  # a job no process runs any more does not block the delete
        self.refresh_from_db()
        if user is not None and not user.is_staff:
            others = self.extractions.exclude(owner_id=user.pk).count()
            if others:
                raise DeletionRefused(
                    f"{others} extraction{'s' if others > 1 else ''} of other users "
                    f"use{'' if others > 1 else 's'} {self.name}: staff can delete it with them."
                )
        if self.is_active:
            raise StillRunning(f"{self.name} is {self.get_status_display().lower()}: cancel it first.")
        running = self.running_extractions.first()
        if running is not None:
            raise StillRunning(
                f"Extraction {running.pk} of {self.name} is running: cancel it first.", blocking=running
            )
        pk = self.pk
        freed = self.release_files()
        for extraction in self.extractions.all():  # its activations go with it
            freed += extraction.discard_partial_files()
        self.delete()
        progress.publish(self.KIND, pk, deleted=True)
        return freed

    def job_task(self) -> tuple[str, str]:
        return "models_app.jobs.download.run_download", settings.DOWNLOAD_CLUSTER

    def discard_partial_files(self) -> int:
        # Re-read first: the job may have resolved the revision to a newer commit.
        commit = LanguageModel.objects.filter(pk=self.pk).values_list("commit_sha", flat=True).first()
        self.commit_sha = commit if commit is not None else self.commit_sha
        return self.release_files()

    def discard_lost_files(self) -> int:
        """A lost worker's download: its complete blobs stay, so a Retry fetches only the files
        still missing; the blob it was writing and a half-saved quantized copy go."""
        freed = sum(storage.remove_tree(path) for path in self._partial_quantized_dirs())
        return freed + self.release_unfinished_blobs()

    def release_unfinished_blobs(self) -> int:
        """Remove the half-written blobs of its repository (storage.remove_unfinished_blobs),
        unless another download of the repository is running: one of them may be its transfer's.
        That download's own end sweeps them then."""
        if not self.repo_id:
            return 0
        elsewhere = (
            LanguageModel.objects.filter(repo_id=self.repo_id, status=ModelStatus.DOWNLOADING)
            .exclude(pk=self.pk)
            .exists()
        )
        return 0 if elsewhere else storage.remove_unfinished_blobs(settings.HF_CACHE_DIR, self.repo_id)

    def _partial_quantized_dirs(self) -> list[Path]:
        # loading.save_quantized writes a copy under this name and renames it when complete.
        return [
            path
            for fmt in quant.SERIALIZED_FORMATS
            if (path := settings.QUANTIZED_DIR / f"{self.pk}_{fmt}.partial").exists()
        ]

    @cached_property
    def unfinished_bytes(self) -> int:
        """Disk held by unfinished work: half-written blobs of its repository and its own
        half-saved quantized copy. Counted on the card while they exist."""
        if not self.repo_id:
            return 0
        blobs = storage.unfinished_blobs(settings.HF_CACHE_DIR, self.repo_id)
        return sum(storage.file_disk_usage(blob) for blob in blobs) + sum(
            storage.disk_usage(path) for path in self._partial_quantized_dirs()
        )

    @cached_property
    def disk_bytes(self) -> int | None:
        """The card's disk figure: what the finished job measured or, before it finished (a
        download running, stopped or lost), the files complete so far; plus unfinished work."""
        done = self.disk_size_bytes
        if done is None and self.commit_sha:
            done = (
                storage.snapshot_size(
                    storage.snapshot_dir(settings.HF_CACHE_DIR, self.repo_id, self.commit_sha)
                )
                or None
            )
        if done is None and not self.unfinished_bytes:
            return None
        return (done or 0) + self.unfinished_bytes

    def on_job_ended(self) -> None:
        LanguageModel.objects.filter(pk=self.pk).update(encrypted_token=None)
        # A transfer stopped or lost while another download of the repository ran left its blob
        # for the last one to end.
        self.release_unfinished_blobs()
