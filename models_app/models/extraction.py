"""An activation extraction job and, once completed, its files and statistics."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import models

from ..formatting import bytesize
from ..ml import checkpoint, storage
from ..ml.vocabulary import CONTEXT_TOKENS, DTYPE_CHOICES
from .dataset import Dataset
from .job import JobRecord, StillRunning
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
    PROGRESS_FIELDS = {
        "progress": 0.0,
        "samples_done": 0,
        "tokens_per_second": 0.0,
        "eta_seconds": None,
        "bytes_written": 0,
        "current_batch_size": None,
    }
    QUEUED, RUNNING = ExtractionStatus.QUEUED, ExtractionStatus.LOADING
    ACTIVE = (
        ExtractionStatus.QUEUED,
        ExtractionStatus.LOADING,
        ExtractionStatus.EXTRACTING,
        ExtractionStatus.SAVING,
    )
    DONE, FAILED, CANCELLED = (
        ExtractionStatus.COMPLETED,
        ExtractionStatus.FAILED,
        ExtractionStatus.CANCELLED,
    )

    model = models.ForeignKey(LanguageModel, on_delete=models.CASCADE, related_name="extractions")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="extractions")
    layers = models.JSONField(default=list)
    hooks = models.JSONField(default=list)
    batch_size = models.IntegerField(default=8)
    # Samples per forward pass (memory); empty: the batch size.
    micro_batch_size = models.IntegerField(null=True, blank=True)
    max_samples = models.IntegerField(null=True, blank=True)
    context_length = models.IntegerField(default=128)
    top_k = models.IntegerField(default=10)
    dtype = models.CharField(max_length=10, default="float16", choices=DTYPE_CHOICES)
    # Tokens shown before / after the peak token of a top example (the page can change them).
    context_prefix_tokens = models.IntegerField(default=CONTEXT_TOKENS)
    context_suffix_tokens = models.IntegerField(default=CONTEXT_TOKENS)

    status = models.CharField(
        max_length=12, choices=ExtractionStatus.choices, default=ExtractionStatus.QUEUED, db_index=True
    )
    progress = models.FloatField(default=0.0)
    samples_done = models.IntegerField(default=0)
    samples_total = models.IntegerField(default=0)
    tokens_per_second = models.FloatField(default=0.0)
    eta_seconds = models.FloatField(null=True, blank=True)
    bytes_written = models.BigIntegerField(default=0)
    current_batch_size = models.IntegerField(null=True, blank=True)
    output_path = models.CharField(max_length=1024, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    size_bytes = models.BigIntegerField(default=0, help_text="Disk used by its files when completed")

    class Meta(JobRecord.Meta):
        # The lists: a model's completed extractions (History counts), and the sorts that a long
        # history would otherwise sort in full.
        indexes = [
            models.Index(fields=["model", "status"]),
            models.Index(fields=["size_bytes"]),
            models.Index(fields=["tokens_per_second"]),
        ]

    def __str__(self) -> str:
        return f"Extraction {self.pk} of {self.model.name}"

    @property
    def statistics(self) -> dict:
        """Per-(layer, hook) statistics, as written to metadata.json."""
        return self.metadata.get("statistics", {})

    @property
    def format(self) -> str:
        """The format the model ran in (its metadata says; a fallback may differ from the one
        asked for), else the model's."""
        ran = (self.metadata.get("model") or {}).get("effective_quantization")
        return ran or self.model.effective_quantization or self.model.quantization

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.completed_at:
            return self.completed_at - self.started_at
        return None

    @property
    def samples(self) -> int:
        return self.samples_total or self.samples_done

    @property
    def is_completed(self) -> bool:
        return self.status == ExtractionStatus.COMPLETED

    @property
    def is_exporting(self) -> bool:
        """An export of it is queued or running (its page polls while the socket is down)."""
        from .export import ActivationExport

        return self.exports.filter(status__in=ActivationExport.ACTIVE).exists()

    @property
    def is_being_compared(self) -> bool:
        """A comparison with it as the reference is queued or running (its page polls while the
        socket is down)."""
        from .comparison import Comparison

        return self.comparisons.filter(status__in=Comparison.ACTIVE).exists()

    @property
    def export_refusal(self) -> str | None:
        """Why it cannot be exported, or None."""
        if self.is_completed:
            return None
        return (
            f"Extraction {self.pk} has not completed ({self.get_status_display().lower()}):"
            " only a completed extraction can be exported."
        )

    listed_files: list[str] | None  # set by attach_file_names on records loaded without metadata

    def file_names(self) -> list[str]:
        """The files metadata.json lists. Lists load them alone (`listed_files`, see
        attach_file_names) rather than the whole metadata."""
        if "listed_files" in self.__dict__:
            return self.listed_files or []
        return self.metadata.get("files") or []

    @classmethod
    def attach_file_names(cls, records) -> None:
        """For a page of a list loaded with defer("metadata"): each one's file list, in one
        query for the page only (a sort must not read every row's metadata first)."""
        records = list(records)
        names = dict(
            cls.objects.filter(pk__in=[r.pk for r in records]).values_list("pk", models.F("metadata__files"))
        )
        for record in records:
            record.listed_files = names.get(record.pk)

    def files(self) -> list[tuple[str, int]]:
        """(name, bytes) of the files it wrote that are on disk now, in metadata order."""
        names = self.file_names()
        found = []
        for name in names:
            path = self.output_dir / name
            if path.is_file():
                found.append((name, path.stat().st_size))
        return found

    @property
    def missing_files(self) -> list[str]:
        """Files metadata.json lists that are gone: a completed record is then not shown as fine."""
        if not self.is_completed:
            return []
        names = self.file_names() or ["metadata.json"]
        return [name for name in names if not (self.output_dir / name).is_file()]

    def file_path(self, name: str) -> Path | None:
        """The path of one of its files, or None: only names it wrote, resolved inside its own
        folder and inside the activations directory (a name cannot climb out, a symlink cannot
        point out)."""
        if name not in self.file_names():
            return None
        folder = self.output_dir.resolve()
        path = (folder / name).resolve()
        if path.parent != folder or not path.is_relative_to(Path(settings.ACTIVATIONS_DIR).resolve()):
            return None  # a link, of the file or of the folder, that leads out of the data
        return path if path.is_file() else None

    @property
    def delete_confirmation(self) -> str:
        files = self.files()
        if not files:
            return f"Delete extraction {self.pk}? It has no files on disk."
        total = sum(size for _name, size in files)
        names = ", ".join(name for name, _size in files[:6]) + (" …" if len(files) > 6 else "")
        return (
            f"Delete extraction {self.pk}? Its {len(files)} files ({bytesize(total)}) are deleted: {names}."
        )

    def delete_with_files(self, user=None) -> int:
        """Remove the record and its folder; bytes freed. A running one is refused: the row is
        deleted only while not active, in one statement, so a Retry from another page that
        queued it meanwhile keeps its record and its files."""
        from .comparison import Comparison
        from .export import ActivationExport

        self.refuse_unless_changeable_by(user)
        exporting = self.exports.filter(status__in=ActivationExport.ACTIVE).first()
        if exporting is not None:
            raise StillRunning(f"Export {exporting.pk} is reading this extraction: cancel it first.")
        comparing = Comparison.reading(self)
        if comparing is not None:
            raise StillRunning(f"Comparison {comparing.pk} is reading this extraction: cancel it first.")
        # Exports the terminal wrote elsewhere go too; the others are in the extraction's folder.
        elsewhere = [export.folder for export in self.exports.exclude(folder_path="")]
        deleted, _ = type(self).objects.filter(pk=self.pk).exclude(status__in=self.ACTIVE).delete()
        if not deleted:
            raise StillRunning("This extraction is running: cancel it first.")
        return storage.remove_tree(self.output_dir) + sum(storage.remove_tree(f) for f in elsewhere)

    @property
    def can_retry(self) -> bool:
        return self.status in (ExtractionStatus.FAILED, ExtractionStatus.CANCELLED)

    @property
    def output_dir(self) -> Path:
        return settings.ACTIVATIONS_DIR / str(self.pk)

    def job_task(self) -> tuple[str, str]:
        return "models_app.jobs.extraction.run_extraction", settings.GPU_CLUSTER

    def discard_partial_files(self) -> int:
        return storage.remove_tree(self.output_dir)

    def discard_unfinished_files(self) -> int:
        # What a checkpoint counts stays for Retry to continue from (ml/checkpoint.py); Delete
        # removes it.
        return 0 if self.resume_point else self.discard_partial_files()

    @property
    def resume_point(self) -> dict[str, int] | None:
        """{"samples_done", "samples_total"} of the checkpoint an unfinished run left in its
        folder: what a Retry continues from. None when it would start over."""
        if self.is_completed:
            return None
        return checkpoint.progress(self.output_dir)

    @property
    def unfinished_bytes(self) -> int:
        """Disk its folder takes before it completed: a running job's files, or the `.partial`
        files of a worker that died and is not yet noticed. The page counts them while they exist;
        failing the job (or deleting the record) removes them."""
        return 0 if self.is_completed else storage.disk_usage(self.output_dir)

    def prepare_retry(self) -> None:
        super().prepare_retry()
        self.progress, self.samples_done, self.bytes_written = 0.0, 0, 0
        self.tokens_per_second, self.eta_seconds, self.current_batch_size = 0.0, None, None
        self.metadata = {}

    @property
    def cancel_confirmation(self) -> str:
        return (
            f"Cancel extraction {self.pk}? The samples done so far are kept: Retry continues from"
            " them, Delete removes them."
        )
