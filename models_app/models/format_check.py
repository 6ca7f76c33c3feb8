"""A format check: one repository's downloaded formats run over the same samples of a dataset, each
compared with the most precise one on its next-token predictions (models_app.ml.format_check:
KL divergence, top-1 agreement, perplexity ratio). The result is kept on the record; the job's
scratch file (the reference's log-probabilities) lives in `scratch` while it runs."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from ..ml import storage
from ..ml.quantization import FORMATS
from .dataset import Dataset
from .job import JobRecord
from .language_model import LanguageModel, ModelStatus
from .owned import OwnedQuerySet


class FormatCheckStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    CHECKING = "checking", "Checking"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# As OwnedManager (models/owned.py): a named class, so that django-stubs follows it.
class FormatCheckManager(models.Manager.from_queryset(OwnedQuerySet)):  # type: ignore[misc]
    pass


def format_of(model: LanguageModel) -> str:
    return model.effective_quantization or model.quantization


class FormatCheck(JobRecord):
    KIND = "format_check"
    PROGRESS_FIELDS = {"progress": 0.0}
    QUEUED, RUNNING = FormatCheckStatus.QUEUED, FormatCheckStatus.CHECKING
    ACTIVE = (FormatCheckStatus.QUEUED, FormatCheckStatus.CHECKING)
    DONE, FAILED = FormatCheckStatus.COMPLETED, FormatCheckStatus.FAILED
    CANCELLED = FormatCheckStatus.CANCELLED

    # The model the check was asked from; the formats run are `model_ids`, the reference first.
    model = models.ForeignKey(LanguageModel, on_delete=models.CASCADE, related_name="format_checks")
    model_ids = models.JSONField(default=list)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="format_checks")
    samples = models.PositiveIntegerField(default=64)
    context_length = models.PositiveIntegerField(default=128)
    batch_size = models.PositiveIntegerField(default=8)
    status = models.CharField(
        max_length=12, choices=FormatCheckStatus.choices, default=FormatCheckStatus.QUEUED
    )
    progress = models.FloatField(default=0.0)
    result = models.JSONField(default=dict, blank=True, help_text="What check_formats --json prints")

    objects = FormatCheckManager()  # type: ignore[misc]

    def __str__(self) -> str:
        return f"Format check {self.pk} of {self.model.repo_id}"

    @classmethod
    def formats_of(cls, model: LanguageModel, user=None) -> list[LanguageModel]:
        """The ready models `user` sees of `model`'s repository and commit, the most precise
        format first (the reference): what a check of `model` runs. In a private studio, only
        those of `model`'s owner, whoever asks (staff too), so the result shows no one else's."""
        visible = LanguageModel.objects.all() if user is None else LanguageModel.objects.visible_to(user)
        found = visible.filter(
            status=ModelStatus.READY, repo_id=model.repo_id, commit_sha=model.commit_sha
        ).order_by("pk")
        if settings.PRIVATE:  # the result names every format: they must all be the owner's own
            found = found.filter(owner_id=model.owner_id)
        rank = {fmt: i for i, fmt in enumerate(FORMATS)}
        return sorted(found, key=lambda m: rank.get(format_of(m), len(FORMATS)))

    @property
    def is_completed(self) -> bool:
        return self.status == FormatCheckStatus.COMPLETED

    @property
    def scratch(self) -> Path:
        return Path(settings.DATA_DIR) / "format_checks" / str(self.pk)

    def job_task(self) -> tuple[str, str]:
        # The GPU queue: it runs models, as extractions do.
        return "models_app.jobs.format_check.run_format_check", settings.GPU_CLUSTER

    def discard_partial_files(self) -> int:
        return storage.remove_tree(self.scratch)

    @property
    def cancel_confirmation(self) -> str:
        return f"Cancel format check {self.pk}?"
