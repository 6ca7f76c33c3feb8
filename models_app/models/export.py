"""An export of a completed extraction into the files SAE trainers read (models_app.ml.exports),
and the job that writes it. Its folder sits in the extraction's own, under exports/, unless the
terminal named another: deleting the extraction deletes its exports with it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from ..formatting import bytesize
from ..ml import storage
from ..ml.exports.common import PARTIAL
from .extraction import Extraction
from .job import JobRecord, StillRunning
from .owned import OwnedQuerySet

FORMAT_CHOICES = [
    ("saelens", "SAELens activation cache"),
    ("tokens", "Flat .npy per hook"),
]


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    EXPORTING = "exporting", "Exporting"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ExportQuerySet(OwnedQuerySet):
    def visible_to(self, user) -> ExportQuerySet:
        """An export is read with its extraction: whoever sees the extraction sees its exports
        (in a private studio, the extraction's owner and staff), whoever started them."""
        return self.filter(extraction__in=Extraction.objects.visible_to(user).values("pk"))


# As OwnedManager (models/owned.py): a named class, so that django-stubs follows it.
class ExportManager(models.Manager.from_queryset(ExportQuerySet)):  # type: ignore[misc]
    pass


class ActivationExport(JobRecord):
    KIND = "export"
    PROGRESS_FIELDS = {"progress": 0.0, "tokens_done": 0, "tokens_per_second": 0.0, "eta_seconds": None}
    QUEUED, RUNNING = ExportStatus.QUEUED, ExportStatus.EXPORTING
    ACTIVE = (ExportStatus.QUEUED, ExportStatus.EXPORTING)
    DONE, FAILED, CANCELLED = ExportStatus.COMPLETED, ExportStatus.FAILED, ExportStatus.CANCELLED

    extraction = models.ForeignKey(Extraction, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=10, choices=FORMAT_CHOICES)
    hooks = models.JSONField(default=list, blank=True, help_text="Hook keys (layer_3_mlp); empty: every hook")
    context_size = models.IntegerField(null=True, blank=True, help_text="saelens: tokens per row")
    shuffle_seed = models.IntegerField(null=True, blank=True, help_text="saelens: rows shuffled with it")
    # Empty: exports/{id}-{format} in the extraction's folder. The terminal may choose another.
    folder_path = models.CharField(max_length=1024, blank=True)

    status = models.CharField(max_length=12, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    progress = models.FloatField(default=0.0)
    tokens_done = models.BigIntegerField(default=0)
    tokens_total = models.BigIntegerField(default=0)
    tokens_per_second = models.FloatField(default=0.0)
    eta_seconds = models.FloatField(null=True, blank=True)
    manifest = models.JSONField(default=dict, blank=True, help_text="The export's manifest.json")
    size_bytes = models.BigIntegerField(default=0)

    objects = ExportManager()  # type: ignore[misc]  # the exports rule replaces Owned's (see ExportQuerySet)

    def __str__(self) -> str:
        return f"Export {self.pk} ({self.format}) of extraction {self.extraction_id}"

    @property
    def folder(self) -> Path:
        if self.folder_path:
            return Path(self.folder_path)
        return Extraction(pk=self.extraction_id).output_dir / "exports" / f"{self.pk}-{self.format}"

    @property
    def partial_folder(self) -> Path:
        return self.folder.with_name(self.folder.name + PARTIAL)

    @property
    def is_completed(self) -> bool:
        return self.status == ExportStatus.COMPLETED

    def job_task(self) -> tuple[str, str]:
        # Downloads' queue: an export is disk work, and must not wait behind extractions.
        return "models_app.jobs.export.run_export", settings.DOWNLOAD_CLUSTER

    def files(self) -> list[tuple[str, int]]:
        """(name, bytes) of a completed export's files. Both formats write one flat folder."""
        if not self.is_completed or not self.folder.is_dir():
            return []
        return [(path.name, path.stat().st_size) for path in sorted(self.folder.iterdir()) if path.is_file()]

    def file_path(self, name: str) -> Path | None:
        """One of its files, or None: a name it holds, never one that climbs out of its folder
        or a link that leads out."""
        if name not in dict(self.files()):
            return None
        folder = self.folder.resolve()
        path = (folder / name).resolve()
        return path if path.parent == folder and path.is_file() else None

    def discard_partial_files(self) -> int:
        # Its `.partial` folder, and the finished one too: a cancel that lands after the last
        # rename still ends the job cancelled, and then its files must not stay behind.
        return storage.remove_tree(self.partial_folder) + storage.remove_tree(self.folder)

    def delete_with_files(self, user=None) -> int:
        """The record and its folder. A running export is refused: the row goes only while not
        active, in one statement, as an extraction's does."""
        from .. import progress

        self.refuse_unless_changeable_by(user)
        deleted, _ = type(self).objects.filter(pk=self.pk).exclude(status__in=self.ACTIVE).delete()
        if not deleted:
            raise StillRunning("This export is running: cancel it first.")
        progress.publish(self.KIND, self.pk, deleted=True)
        return storage.remove_tree(self.folder) + storage.remove_tree(self.partial_folder)

    @property
    def cancel_confirmation(self) -> str:
        return f"Cancel export {self.pk}? What it wrote so far is deleted."

    @property
    def delete_confirmation(self) -> str:
        return f"Delete export {self.pk}? Its files ({bytesize(self.size_bytes)}) are deleted."
