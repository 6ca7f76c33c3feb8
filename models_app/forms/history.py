"""The Extractions tab's filters and sort, the top-examples chooser and importing a found folder."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import MaxValueValidator
from django.db import connection
from django.db.models import DurationField, ExpressionWrapper, F, Func, IntegerField, Q
from django.db.models.expressions import Combinable

from ..ml.vocabulary import HOOK_CHOICES, MAX_CONTEXT_TOKENS, hook_label
from ..models import Dataset, ExtractionStatus, LanguageModel
from .fields import DatasetChoiceField, LanguageModelChoiceField

SORTS: dict[str, tuple[str, list[str | Combinable]]] = {
    "newest": ("Newest", ["-created_at", "-pk"]),
    "oldest": ("Oldest", ["created_at", "pk"]),
    "id": ("Id", ["-pk"]),
    "model": ("Model", ["model__name", "-pk"]),
    "dataset": ("Dataset", ["dataset__name", "-pk"]),
    "layers": ("Most layers", ["-layer_count", "layers__0", "-pk"]),
    "hooks": ("Most hooks", ["-hook_count", "hooks", "-pk"]),
    "samples": ("Samples", ["-samples_total", "-pk"]),
    "status": ("Status", ["status", "-pk"]),
    "duration": ("Duration", [F("run_time").desc(nulls_last=True), "-pk"]),
    "speed": ("Tokens/s", ["-tokens_per_second", "-pk"]),
    "size": ("Size on disk", ["-size_bytes", "-pk"]),
}


def _has_hook(hook: str) -> Q:
    """hooks (a JSON list) holds `hook`: JSON containment on PostgreSQL, where reading each row's
    JSON as upper-cased text cost a third of a filtered page; SQLite has no JSON containment, and
    the list's text holds the name in quotes."""
    if connection.vendor == "postgresql":
        return Q(hooks__contains=[hook])
    return Q(hooks__icontains=f'"{hook}"')


class ExtractionFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        widget=forms.TextInput(
            attrs={
                "placeholder": "Search model or dataset",
                "type": "search",
                "aria-label": "Search model or dataset",
            }
        ),
    )
    # A model's History link; hidden (a menu of every model would not scale), shown as a chip.
    model = forms.ModelChoiceField(
        queryset=LanguageModel.objects.none(), required=False, widget=forms.HiddenInput
    )
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.none(),
        required=False,
        empty_label="Any dataset",
        widget=forms.Select(attrs={"aria-label": "Dataset"}),
    )
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any status")] + list(ExtractionStatus.choices),
        widget=forms.Select(attrs={"aria-label": "Status"}),
    )
    hook = forms.ChoiceField(
        required=False,
        choices=[("", "Any hook")] + HOOK_CHOICES,
        widget=forms.Select(attrs={"aria-label": "Hook"}),
    )
    sort = forms.ChoiceField(
        required=False,
        choices=[(k, v[0]) for k, v in SORTS.items()],
        widget=forms.Select(attrs={"aria-label": "Sort by"}),
    )

    def __init__(self, *args, user, **kwargs):
        kwargs.setdefault("auto_id", "filter-%s")  # apart from the ids of any form beside it
        super().__init__(*args, **kwargs)
        model, dataset = self.fields["model"], self.fields["dataset"]
        assert isinstance(model, forms.ModelChoiceField) and isinstance(dataset, forms.ModelChoiceField)
        # Any model is a choice: a model's History link works before it has extractions.
        model.queryset = LanguageModel.objects.visible_to(user)
        dataset.queryset = Dataset.objects.visible_to(user).order_by("name")

    def apply(self, queryset):
        """Each valid filter applies on its own: a stale or mistyped parameter does not drop
        the others."""
        queryset = queryset.annotate(
            run_time=ExpressionWrapper(F("completed_at") - F("started_at"), output_field=DurationField()),
            layer_count=JSONArrayLength("layers"),
            hook_count=JSONArrayLength("hooks"),
        )
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        for field in ("model", "dataset", "status"):
            if data.get(field):
                queryset = queryset.filter(**{field: data[field]})
        if data.get("q"):
            text = data["q"]
            queryset = queryset.filter(
                Q(model__name__icontains=text)
                | Q(model__repo_id__icontains=text)
                | Q(dataset__name__icontains=text)
            )
        if data.get("hook"):
            queryset = queryset.filter(_has_hook(data["hook"]))
        return queryset.order_by(*SORTS[data.get("sort") or "newest"][1])


class JSONArrayLength(Func):
    """The number of elements of a JSON array column, on SQLite and PostgreSQL."""

    function = "json_array_length"
    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, function="jsonb_array_length", **extra)


class NeuronForm(forms.Form):
    """Which top examples to show: a (layer, hook) of the extraction, and a neuron of it (empty:
    the neurons with the highest maximum activation)."""

    target = forms.ChoiceField(label="Layer and hook")
    neuron = forms.IntegerField(required=False, min_value=0, label="Neuron")
    # The form's metaclass moves declared fields off the class: BaseForm.prefix stays the form's.
    prefix = forms.IntegerField(  # type: ignore[assignment]
        required=False, min_value=0, max_value=MAX_CONTEXT_TOKENS, label="Tokens before"
    )
    suffix = forms.IntegerField(
        required=False, min_value=0, max_value=MAX_CONTEXT_TOKENS, label="Tokens after"
    )

    def __init__(self, *args, extraction, **kwargs):
        super().__init__(*args, **kwargs)
        self.extraction = extraction
        target = self.fields["target"]
        assert isinstance(target, forms.ChoiceField)
        target.choices = [
            (key, f"Layer {s['layer']} · {hook_label(s['hook'])}") for key, s in extraction.statistics.items()
        ]
        self.hidden_size = int(extraction.metadata.get("hidden_size") or 0)
        last = self.hidden_size - 1
        self.fields["neuron"].validators.append(
            MaxValueValidator(last, message=f"This extraction has neurons 0 to {last}.")
        )
        self.fields["neuron"].widget.attrs["max"] = last

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # Form.clean returns cleaned_data
        if cleaned.get("prefix") is None:
            cleaned["prefix"] = self.extraction.context_prefix_tokens
        if cleaned.get("suffix") is None:
            cleaned["suffix"] = self.extraction.context_suffix_tokens
        return cleaned


class ImportFolderForm(forms.Form):
    """Attach a folder found on disk to a model and a dataset, so it becomes a record."""

    folder = forms.CharField(widget=forms.HiddenInput)
    model = LanguageModelChoiceField(
        queryset=LanguageModel.objects.all(),
        empty_label="Choose a model…",
        error_messages={"required": "Choose the model these activations came from."},
    )
    dataset = DatasetChoiceField(
        queryset=Dataset.objects.all(),
        empty_label="Choose a dataset…",
        error_messages={"required": "Choose the dataset they were read from."},
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        model, dataset = self.fields["model"], self.fields["dataset"]
        assert isinstance(model, forms.ModelChoiceField) and isinstance(dataset, forms.ModelChoiceField)
        model.queryset = LanguageModel.objects.visible_to(user)
        dataset.queryset = Dataset.objects.visible_to(user)


class ThresholdForm(forms.Form):
    """The neuron page's density threshold: a token counts when its value is above it."""

    threshold = forms.FloatField(required=False, initial=0.0, label="Density above")

    def value(self) -> float:
        if self.is_valid() and self.cleaned_data["threshold"] is not None:
            return float(self.cleaned_data["threshold"])
        return 0.0
