"""The studio's records, one module per topic. Each job's row is the source of truth for that
job: the worker writes its phase, progress and heartbeat there, and every page (and every live
update) renders from it. The paths a job writes and the cleanup of what it leaves behind live
on the records too."""

from __future__ import annotations

from .api_token import ApiToken
from .comparison import Comparison, ComparisonStatus
from .dataset import Dataset, DatasetStatus
from .export import ActivationExport, ExportStatus
from .extraction import Extraction, ExtractionStatus
from .format_check import FormatCheck, FormatCheckStatus
from .job import LOST_WORKER_MESSAGE, DeletionRefused, JobRecord, StillRunning
from .language_model import (
    DOWNLOAD_PHASES,
    FORMAT_CHOICES,
    STALL_SECONDS,
    LanguageModel,
    ModelStatus,
    overall_progress,
)
from .owned import Owned

JOB_KINDS: dict[str, type[JobRecord]] = {
    cls.KIND: cls for cls in (LanguageModel, Dataset, Extraction, ActivationExport, Comparison, FormatCheck)
}

__all__ = [
    "DOWNLOAD_PHASES",
    "FORMAT_CHOICES",
    "JOB_KINDS",
    "LOST_WORKER_MESSAGE",
    "STALL_SECONDS",
    "ActivationExport",
    "ApiToken",
    "Comparison",
    "ComparisonStatus",
    "Dataset",
    "DatasetStatus",
    "DeletionRefused",
    "ExportStatus",
    "Extraction",
    "ExtractionStatus",
    "FormatCheck",
    "FormatCheckStatus",
    "JobRecord",
    "LanguageModel",
    "ModelStatus",
    "Owned",
    "StillRunning",
    "overall_progress",
]
