"""A comparison of extractions of one model in several formats (models_app.ml.compare), and the
job that computes it from their arrays. The result is kept on the record: each other
extraction's figures per shared (layer, hook), against the base."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import models

from ..ml import compare
from ..ml.quantization import FORMATS
from .extraction import Extraction
from .job import JobRecord
from .owned import OwnedQuerySet


class ComparisonStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    COMPARING = "comparing", "Comparing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class ComparisonQuerySet(OwnedQuerySet):
    def visible_to(self, user) -> ComparisonQuerySet:
        """A comparison is read with its base extraction: whoever sees that one sees it."""
        return self.filter(base__in=Extraction.objects.visible_to(user).values("pk"))


# As OwnedManager (models/owned.py): a named class, so that django-stubs follows it.
class ComparisonManager(models.Manager.from_queryset(ComparisonQuerySet)):  # type: ignore[misc]
    pass


@dataclass
class Departure:
    """Where one compared extraction lies farthest from the base: its largest relative error."""

    id: int
    format: str
    layer: int
    hook: str
    relative_error: float
    cosine: float


def precision_rank(extraction: Extraction) -> tuple[int, int]:
    """Sorts the most precise format first (FP32, FP16, Q8, Q4, Q2), then the oldest."""
    fmt = extraction.format
    return (FORMATS.index(fmt) if fmt in FORMATS else len(FORMATS), extraction.pk)


class Comparison(JobRecord):
    KIND = "comparison"
    PROGRESS_FIELDS = {"progress": 0.0, "tokens_done": 0}
    QUEUED, RUNNING = ComparisonStatus.QUEUED, ComparisonStatus.COMPARING
    ACTIVE = (ComparisonStatus.QUEUED, ComparisonStatus.COMPARING)
    DONE, FAILED = ComparisonStatus.COMPLETED, ComparisonStatus.FAILED
    CANCELLED = ComparisonStatus.CANCELLED

    base = models.ForeignKey(Extraction, on_delete=models.CASCADE, related_name="comparisons")
    # The extractions compared with the base, in the order asked. A JSON list rather than a
    # many-to-many: the order is the result's, and a record stays readable after one is deleted.
    other_ids = models.JSONField(default=list)
    status = models.CharField(
        max_length=12, choices=ComparisonStatus.choices, default=ComparisonStatus.QUEUED
    )
    progress = models.FloatField(default=0.0)
    tokens_done = models.BigIntegerField(default=0)
    tokens_total = models.BigIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True, help_text="What compare_extractions --json prints")

    objects = ComparisonManager()  # type: ignore[misc]  # the base extraction's rule (ComparisonQuerySet)

    def __str__(self) -> str:
        others = ", ".join(str(pk) for pk in self.other_ids)
        return f"Comparison {self.pk} of extraction {self.base_id} with {others}"

    @property
    def is_completed(self) -> bool:
        return self.status == ComparisonStatus.COMPLETED

    def job_task(self) -> tuple[str, str]:
        # Downloads' queue: reading arrays is disk work, and must not wait behind extractions.
        return "models_app.jobs.comparison.run_comparison", settings.DOWNLOAD_CLUSTER

    @classmethod
    def candidates(cls, base: Extraction, user=None) -> list[Extraction]:
        """The completed extractions `user` sees that compare with `base`: the same repository,
        commit, dataset, samples and context length, and a shared (layer, hook), by the copy of
        metadata.json each record keeps (the form checks the files themselves), most precise
        format first. Narrowed in the database first, so a long history is not read. In a private
        studio, only the base's owner's extractions: a comparison is seen by whoever sees its base."""
        visible = Extraction.objects.all() if user is None else Extraction.objects.visible_to(user)
        rows = (
            visible.filter(
                status=Extraction.DONE,
                dataset_id=base.dataset_id,
                context_length=base.context_length,
                samples_total=base.samples_total,
                model__repo_id=base.model.repo_id,
            )
            .exclude(pk=base.pk)
            .select_related("model")
        )
        if settings.PRIVATE:  # whoever sees the base sees the result: only its owner's compare
            rows = rows.filter(owner_id=base.owner_id)
        reference = {**compare.summarize(base.metadata), "id": base.pk}
        found = [
            row
            for row in rows
            if not compare.why_not_comparable(reference, {**compare.summarize(row.metadata), "id": row.pk})
        ]
        return sorted(found, key=precision_rank)

    @property
    def others(self) -> list[Extraction]:
        """The compared extractions that still exist, in the order compared."""
        found = Extraction.objects.select_related("model").in_bulk(self.other_ids)
        return [found[pk] for pk in self.other_ids if pk in found]

    def departures(self) -> list[Departure]:
        """For each compared extraction, the (layer, hook) where it departs most from the base."""
        found = []
        for other in (self.result or {}).get("others", []):
            hooks = [h for h in other["hooks"] if h.get("relative_error") is not None]
            if hooks:
                worst = max(hooks, key=lambda h: h["relative_error"])
                found.append(
                    Departure(
                        other["id"],
                        other.get("format") or "",
                        worst["layer"],
                        worst["hook"],
                        worst["relative_error"],
                        worst["cosine"],
                    )
                )
        return found

    @classmethod
    def reading(cls, extraction: Extraction) -> Comparison | None:
        """A queued or running comparison that reads `extraction` (as base or other), if any."""
        for comparison in cls.objects.filter(status__in=cls.ACTIVE):
            if comparison.base_id == extraction.pk or extraction.pk in comparison.other_ids:
                return comparison
        return None

    @property
    def cancel_confirmation(self) -> str:
        return f"Cancel comparison {self.pk}?"
