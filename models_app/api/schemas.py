"""What the API returns: the records as scripts read them (sizes in bytes, times in ISO 8601)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.urls import reverse
from ninja import Field, Schema

from .common import Page


class Owned(Schema):
    owner: str | None = None

    @staticmethod
    def resolve_owner(record) -> str | None:
        return record.owner.username if record.owner_id else None


class ModelOut(Owned):
    id: int
    name: str
    repo_id: str
    revision: str
    commit_sha: str
    status: str
    quantization: str
    effective_quantization: str
    quantization_note: str
    architecture: str
    params_count: int | None
    progress: float
    phase_detail: str
    bytes_downloaded: int
    bytes_total: int
    speed_bps: float
    eta_seconds: float | None
    memory_required_bytes: int | None
    memory_footprint_bytes: int | None
    disk_size_bytes: int | None
    error_message: str
    created_at: datetime
    updated_at: datetime


class ModelPage(Page):
    items: list[ModelOut]


class PreviewOut(Schema):
    repo_id: str
    revision: str
    commit_sha: str
    gated: bool
    architecture: str
    params_count: int
    params_exact: bool
    download_bytes: int
    memory_by_format: dict[str, int]
    free_disk_bytes: int


class ArchitectureOut(Schema):
    id: int
    architecture: str
    summary: dict[str, Any]
    config: dict[str, Any]


class Freed(Schema):
    freed_bytes: int


class DatasetOut(Owned):
    id: int
    name: str
    source: str
    source_detail: str
    text_field: str
    file_format: str
    status: str
    progress_detail: str
    num_samples: int
    size_bytes: int
    preview: list[str]
    error_message: str
    created_at: datetime


class DatasetPage(Page):
    items: list[DatasetOut]


class FileOut(Schema):
    name: str
    size_bytes: int
    url: str


def files_with_urls(record, url_name: str, id_parameter: str) -> list[dict]:
    """A record's files (`record.files()`: name, bytes) with the API's URL of each."""
    return [
        {
            "name": name,
            "size_bytes": size,
            "url": reverse(url_name, kwargs={id_parameter: record.pk, "name": name}),
        }
        for name, size in record.files()
    ]


class ExtractionOut(Owned):
    id: int
    model: int
    dataset: int
    layers: list[int]
    hooks: list[str]
    batch_size: int
    micro_batch_size: int | None
    max_samples: int | None
    context_length: int
    top_k: int
    dtype: str
    status: str
    progress: float
    samples_done: int
    samples_total: int
    tokens_per_second: float
    eta_seconds: float | None
    bytes_written: int
    size_bytes: int
    error_message: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @staticmethod
    def resolve_model(record) -> int:
        return record.model_id

    @staticmethod
    def resolve_dataset(record) -> int:
        return record.dataset_id


class ExtractionPage(Page):
    items: list[ExtractionOut]


class ExtractionDetail(ExtractionOut):
    """One extraction: its files (with the API's download URL) and per-(layer, hook) statistics,
    keyed like the files: "layer_3_residual"."""

    files: list[FileOut]
    statistics: dict[str, Any]
    hidden_size: int | None
    resume_from_sample: int | None = Field(
        description="A failed or cancelled extraction's checkpoint: the sample a retry continues"
        " from (null: it starts over)"
    )
    resumed_from_sample: int | None = Field(
        description="A completed extraction's last resume: the sample it continued from (null: never resumed)"
    )

    @staticmethod
    def resolve_files(record) -> list[dict]:
        return files_with_urls(record, "api:extraction_file", "extraction_id")

    @staticmethod
    def resolve_resume_from_sample(record) -> int | None:
        point = record.resume_point
        return point["samples_done"] if point else None

    @staticmethod
    def resolve_resumed_from_sample(record) -> int | None:
        return record.metadata.get("resumed_from_sample")

    @staticmethod
    def resolve_hidden_size(record) -> int | None:
        return record.metadata.get("hidden_size")


class TokenOut(Schema):
    text: str
    value: float
    is_peak: bool


class ExampleOut(Schema):
    """One of a neuron's top activations: its value, where it is (sample row, token position
    in the files) and the decoded tokens around it with their activations."""

    rank: int
    value: float
    sample: int
    token: int
    tokens: list[TokenOut]

    @staticmethod
    def resolve_tokens(example) -> list[dict]:
        return [{"text": p.text, "value": p.value, "is_peak": p.is_peak} for p in example.pieces]


class NeuronOut(Schema):
    neuron: int
    max_activation: float


class ExamplesOut(Schema):
    target: str
    neuron: int | None
    examples: list[ExampleOut] = []
    strongest: list[NeuronOut] = []


class ExportOut(Owned):
    """An export of an extraction for SAE trainers; `files` and `archive_url` once completed."""

    id: int
    extraction: int
    format: str
    hooks: list[str]
    context_size: int | None
    shuffle_seed: int | None
    status: str
    progress: float
    tokens_done: int
    tokens_total: int
    tokens_per_second: float
    eta_seconds: float | None
    size_bytes: int
    error_message: str
    manifest: dict[str, Any]
    files: list[FileOut]
    archive_url: str | None
    created_at: datetime
    completed_at: datetime | None

    @staticmethod
    def resolve_extraction(record) -> int:
        return record.extraction_id

    @staticmethod
    def resolve_files(record) -> list[dict]:
        return files_with_urls(record, "api:export_file", "export_id")

    @staticmethod
    def resolve_archive_url(record) -> str | None:
        if not record.is_completed:
            return None
        return reverse("api:export_archive", kwargs={"export_id": record.pk})


class ComparisonOut(Owned):
    """A comparison of extractions (`base` the reference); `result` once completed: {"base": id,
    "others": [{"id", "format", "hooks": [{"layer", "hook", "module", "tokens", "cosine",
    "relative_error", "sqnr_db", "equal", "top_neuron_overlap", "drifting_neurons"}]}]}."""

    id: int
    base: int
    others: list[int]
    status: str
    progress: float
    tokens_done: int
    tokens_total: int
    error_message: str
    result: dict[str, Any]
    created_at: datetime
    completed_at: datetime | None

    @staticmethod
    def resolve_base(record) -> int:
        return record.base_id

    @staticmethod
    def resolve_others(record) -> list[int]:
        return list(record.other_ids)


class FormatCheckOut(Owned):
    """A format check (`models`: the formats run, the reference first); `result` once completed:
    {"reference": {"format", "model_id", "perplexity"}, "positions", "samples", "context_length",
    "dataset", "formats": [{"format", "model_id", "kl": {"mean", "median", "p99", "max"},
    "top1_agreement", "perplexity", "perplexity_ratio"}]}."""

    id: int
    model: int
    models: list[int]
    dataset: int
    samples: int
    context_length: int
    batch_size: int
    status: str
    progress: float
    error_message: str
    result: dict[str, Any]
    created_at: datetime
    completed_at: datetime | None

    @staticmethod
    def resolve_model(record) -> int:
        return record.model_id

    @staticmethod
    def resolve_models(record) -> list[int]:
        return list(record.model_ids)

    @staticmethod
    def resolve_dataset(record) -> int:
        return record.dataset_id
