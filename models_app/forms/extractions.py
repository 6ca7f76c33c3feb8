"""Validation of an extraction request, the room its files need on the disk included, and the
record it creates: the modal's form, also used by the API and the CLI."""

from __future__ import annotations

from typing import Any

from django import forms

from ..ml.vocabulary import (
    CONTEXT_TOKENS,
    DTYPE_CHOICES,
    HOOK_CHOICES,
    HOOK_TYPES,
    MAX_BATCH,
    MAX_CONTEXT,
    MAX_CONTEXT_TOKENS,
    MAX_SAMPLES,
    MAX_TOP_K,
    MAX_TOPK_MEMORY,
    topk_memory_bytes,
)
from ..models import Dataset, DatasetStatus, Extraction, LanguageModel, ModelStatus
from ..services import extractions as extraction_services
from ..services.estimate import Estimate, estimate_for
from .fields import DatasetChoiceField


class ExtractionForm(forms.Form):
    dataset = DatasetChoiceField(
        queryset=Dataset.objects.none(),
        label="Select Dataset",
        empty_label="Choose a dataset…",
        error_messages={"required": "Choose a dataset.", "invalid_choice": "That dataset is not ready."},
    )
    layers = forms.TypedMultipleChoiceField(
        coerce=int,
        label="Select Layers",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Select at least one layer."},
    )
    hooks = forms.MultipleChoiceField(
        choices=HOOK_CHOICES,
        label="Hook types",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Select at least one hook type."},
    )
    # Each required message says what is missing on its own: the live estimate lists them.
    batch_size = forms.IntegerField(
        initial=8, label="Batch Size", error_messages={"required": "Give a batch size."}
    )
    max_samples = forms.IntegerField(
        required=False, label="Max Samples", help_text="Empty: the whole dataset"
    )
    context_length = forms.IntegerField(
        initial=128, label="Context Length (tokens)", error_messages={"required": "Give a context length."}
    )
    top_k = forms.IntegerField(
        initial=10,
        min_value=1,
        max_value=MAX_TOP_K,
        label="Top K Examples",
        error_messages={"required": "Give a number of top examples."},
    )
    dtype = forms.ChoiceField(
        choices=DTYPE_CHOICES,
        initial="float16",
        label="Output dtype",
        error_messages={"required": "Choose an output dtype."},
    )
    micro_batch_size = forms.IntegerField(
        required=False, label="Micro Batch Size", help_text="Samples per forward pass; empty: the batch size"
    )
    context_prefix_tokens = forms.IntegerField(
        initial=CONTEXT_TOKENS,
        min_value=0,
        max_value=MAX_CONTEXT_TOKENS,
        required=False,
        label="Tokens before peak",
        help_text="Context shown before a top example's peak",
    )
    context_suffix_tokens = forms.IntegerField(
        initial=CONTEXT_TOKENS,
        min_value=0,
        max_value=MAX_CONTEXT_TOKENS,
        required=False,
        label="Tokens after peak",
        help_text="Context shown after a top example's peak",
    )

    # The refusal of settings whose files the disk cannot hold; the live estimate shows the
    # estimate's own warning instead (services.estimate.live).
    NO_ROOM = "no_room"
    estimate: Estimate | None = None  # once the settings are otherwise valid

    def __init__(self, *args, model: LanguageModel, user=None, **kwargs):
        """`user`: whose datasets may be chosen (MISTUDIO_PRIVATE); None (the terminal): any."""
        super().__init__(*args, **kwargs)
        self.model, self.user = model, user
        self.num_layers = model.num_layers
        self.max_context = model.max_position
        datasets = Dataset.objects.visible_to(user) if user is not None else Dataset.objects.all()
        dataset, layers = self.fields["dataset"], self.fields["layers"]
        assert isinstance(dataset, forms.ModelChoiceField) and isinstance(layers, forms.ChoiceField)
        dataset.queryset = datasets.filter(status=DatasetStatus.READY)
        layers.choices = [(i, f"L{i}") for i in range(self.num_layers)]
        layers.error_messages["invalid_choice"] = (
            f"Layer %(value)s does not exist: this model has layers 0 to {self.num_layers - 1}."
        )

    def clean_batch_size(self) -> int:
        value = self.cleaned_data["batch_size"]
        if value is None or not 1 <= value <= MAX_BATCH:
            raise forms.ValidationError(f"Batch size must be between 1 and {MAX_BATCH}.")
        return value

    def clean_max_samples(self) -> int | None:
        value = self.cleaned_data.get("max_samples")
        if value is not None and value < 1:
            raise forms.ValidationError("Max samples must be at least 1 (or empty for all).")
        if value is not None and value > MAX_SAMPLES:
            raise forms.ValidationError(f"Max samples is at most {MAX_SAMPLES:,} (or empty for all).")
        return value

    def clean_context_length(self) -> int:
        value = self.cleaned_data["context_length"]
        if value is None or value < 1:
            raise forms.ValidationError("Context length must be at least 1 token.")
        if self.max_context and value > self.max_context:
            raise forms.ValidationError(f"This model reads at most {self.max_context} tokens.")
        if value > MAX_CONTEXT:  # a config without a maximum: the files would be unbounded
            raise forms.ValidationError(f"Context length is at most {MAX_CONTEXT:,} tokens.")
        return value

    def clean_micro_batch_size(self) -> int | None:
        value = self.cleaned_data.get("micro_batch_size")
        if value is not None and not 1 <= value <= MAX_BATCH:
            raise forms.ValidationError(f"Micro batch size must be between 1 and {MAX_BATCH} (or empty).")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # Form.clean returns cleaned_data
        micro, batch = cleaned.get("micro_batch_size"), cleaned.get("batch_size")
        if micro and batch and micro > batch:
            self.add_error("micro_batch_size", "A micro batch cannot be larger than the batch size.")
        if self.model.status != ModelStatus.READY:
            raise forms.ValidationError(
                f"{self.model.name} is not ready ({self.model.get_status_display().lower()})."
            )
        if self.model.remote_code_refusal:
            raise forms.ValidationError(self.model.remote_code_refusal)
        self._check_top_k_memory(cleaned)
        self._check_duplicate(cleaned)
        self._check_room(cleaned)
        return cleaned

    def _check_top_k_memory(self, cleaned: dict[str, Any]) -> None:
        """The running top-K of every neuron of every output stays on the device."""
        outputs = len(cleaned.get("layers") or []) * len(cleaned.get("hooks") or [])
        top_k, hidden = cleaned.get("top_k"), self.model.hidden_size
        if top_k and outputs and topk_memory_bytes(outputs, hidden, top_k) > MAX_TOPK_MEMORY:
            self.add_error(
                "top_k",
                f"Top-{top_k} of {hidden:,} neurons for {outputs} outputs would hold "
                f"{topk_memory_bytes(outputs, hidden, top_k) / 2**30:.1f} GiB on the device "
                f"(at most {MAX_TOPK_MEMORY / 2**30:.0f} GiB): lower top-K or choose fewer "
                "layers or hook types.",
            )

    def _check_duplicate(self, cleaned: dict[str, Any]) -> None:
        """The same extraction already queued or running: say so rather than run it twice."""
        if self.errors or not cleaned.get("dataset"):
            return
        fields = self.extraction_fields()
        extractions = (
            Extraction.objects.visible_to(self.user) if self.user is not None else Extraction.objects
        )
        same = extractions.filter(
            status__in=Extraction.ACTIVE,
            **{
                k: v for k, v in fields.items() if k not in ("context_prefix_tokens", "context_suffix_tokens")
            },
        ).first()
        if same is not None:
            raise forms.ValidationError(
                f"Extraction {same.pk} with these settings is already {same.get_status_display().lower()}."
            )

    def _check_room(self, cleaned: dict[str, Any]) -> None:
        """Settings otherwise valid: estimated, and refused when their files would not fit."""
        if self.errors:
            return
        self.estimate = estimate_for(self.model, cleaned)
        if self.estimate.refused:
            self.add_error(
                None,
                forms.ValidationError(
                    "Not enough disk space for this extraction: reduce samples, layers, "
                    "hook types or context length, or use float16.",
                    code=self.NO_ROOM,
                ),
            )

    def create(self, owner=None, queue: bool = True) -> Extraction:
        """The record of this valid form's extraction, queued unless the caller runs the job
        itself (the CLI). `owner`: who asked for it (None from the terminal)."""
        return extraction_services.create(queue=queue, **self.extraction_fields(), owner=owner)

    def extraction_fields(self) -> dict:
        data = self.cleaned_data
        return {
            "model": self.model,
            "dataset": data["dataset"],
            "layers": sorted(set(data["layers"])),
            "hooks": [h for h in HOOK_TYPES if h in data["hooks"]],
            "batch_size": data["batch_size"],
            "max_samples": data["max_samples"],
            "context_length": data["context_length"],
            "top_k": data["top_k"],
            "dtype": data["dtype"],
            "micro_batch_size": data["micro_batch_size"],
            "context_prefix_tokens": _or_default(data["context_prefix_tokens"], CONTEXT_TOKENS),
            "context_suffix_tokens": _or_default(data["context_suffix_tokens"], CONTEXT_TOKENS),
        }


def _or_default(value: int | None, default: int) -> int:
    return default if value is None else value
