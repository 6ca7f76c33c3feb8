"""The Extractions tab's filters and sort, the top-examples chooser and importing a found folder."""
from __future__ import annotations

from django import forms
from django.core.validators import MaxValueValidator
from django.db.models import ExpressionWrapper, F, DurationField

from .extractions import HOOK_CHOICES
from ..models import Dataset, ExtractionStatus, LanguageModel

SORTS = {
    "newest": ("Newest", ["-created_at", "-pk"]),
    "oldest": ("Oldest", ["created_at", "pk"]),
    "id": ("Id", ["-pk"]),
    "model": ("Model", ["model__name", "-pk"]),
    "dataset": ("Dataset", ["dataset__name", "-pk"]),
    "layers": ("Layers", ["layers", "-pk"]),
    "hooks": ("Hooks", ["hooks", "-pk"]),
    "samples": ("Samples", ["-samples_total", "-pk"]),
    "status": ("Status", ["status", "-pk"]),
    "duration": ("Duration", [F("run_time").desc(nulls_last=True), "-pk"]),
    "speed": ("Tokens/s", ["-tokens_per_second", "-pk"]),
    "size": ("Size on disk", ["-size_bytes", "-pk"]),
}


class ExtractionFilterForm(forms.Form):
    model = forms.ModelChoiceField(queryset=LanguageModel.objects.none(), required=False,
                                   empty_label="Any model")
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), required=False,
                                     empty_label="Any dataset")
    status = forms.ChoiceField(required=False, choices=[("", "Any status")] + list(ExtractionStatus.choices))
    hook = forms.ChoiceField(required=False, choices=[("", "Any hook")] + HOOK_CHOICES)
    sort = forms.ChoiceField(required=False, choices=[(k, v[0]) for k, v in SORTS.items()])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = LanguageModel.objects.filter(extractions__isnull=False).distinct()
        self.fields["dataset"].queryset = Dataset.objects.filter(extractions__isnull=False).distinct()

    def apply(self, queryset):
        queryset = queryset.annotate(run_time=ExpressionWrapper(F("completed_at") - F("started_at"),
                                                                output_field=DurationField()))
        if not self.is_valid():
            return queryset.order_by(*SORTS["newest"][1])
        data = self.cleaned_data
        for field in ("model", "dataset", "status"):
            if data[field]:
                queryset = queryset.filter(**{field: data[field]})
        if data["hook"]:
            # hooks is a JSON list; its text holds the name in quotes (works on SQLite and PostgreSQL).
            queryset = queryset.filter(hooks__icontains=f'"{data["hook"]}"')
        return queryset.order_by(*SORTS[data["sort"] or "newest"][1])


class NeuronForm(forms.Form):
    """Which top examples to show: a (layer, hook) of the extraction, and a neuron of it (empty:
    the neurons with the highest maximum activation)."""
    target = forms.ChoiceField(label="Layer and hook")
    neuron = forms.IntegerField(required=False, min_value=0, label="Neuron")
    prefix = forms.IntegerField(required=False, min_value=0, max_value=500, label="Tokens before")
    suffix = forms.IntegerField(required=False, min_value=0, max_value=500, label="Tokens after")

    def __init__(self, *args, extraction, **kwargs):
        super().__init__(*args, **kwargs)
        self.extraction = extraction
        self.fields["target"].choices = [(key, f"Layer {s['layer']} · {s['hook']}")
                                         for key, s in extraction.statistics.items()]
        self.hidden_size = int(extraction.metadata.get("hidden_size") or 0)
        last = self.hidden_size - 1
        self.fields["neuron"].validators.append(
            MaxValueValidator(last, message=f"This extraction has neurons 0 to {last}."))
        self.fields["neuron"].widget.attrs["max"] = last

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("prefix") is None:
            cleaned["prefix"] = self.extraction.context_prefix_tokens
        if cleaned.get("suffix") is None:
            cleaned["suffix"] = self.extraction.context_suffix_tokens
        return cleaned


class ImportFolderForm(forms.Form):
    """Attach a folder found on disk to a model and a dataset, so it becomes a record."""
    folder = forms.CharField(widget=forms.HiddenInput)
    model = forms.ModelChoiceField(queryset=LanguageModel.objects.all(), empty_label="Choose a model…",
                                   error_messages={"required": "Choose the model these activations came from."})
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all(), empty_label="Choose a dataset…",
                                     error_messages={"required": "Choose the dataset they were read from."})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].label_from_instance = lambda m: f"{m.name} ({m.repo_id}@{m.revision})"
        self.fields["dataset"].label_from_instance = lambda d: d.label
