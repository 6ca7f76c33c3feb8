"""Validation of extraction templates. The Templates tab, the admin, JSON imports and the
extraction modal's "Save as template" all validate through TemplateForm, so each rule and its
message live in one place.

TemplateForm takes HTML posts (layer_indices as text like "0, 2, 5-7") and plain dicts (as the
import and other views build them: layer_indices may be a list of ints, hook_types a list of
strings, extra_metadata a dict). A key missing from the data keeps the instance's value, which for
a new template is the model default; see TemplateForm.__init__.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Literal, cast

from django import forms
from django.db.models import Q
from django.db.models.expressions import Combinable
from django.db.models.functions import Lower
from django.forms.fields import InvalidJSONInput, JSONString
from django.utils.datastructures import MultiValueDict

from models_app.json_input import UnreadableJson, parse_json_limited
from models_app.ml.vocabulary import (
    DTYPES,
    HOOK_CHOICES,
    HOOK_TYPES,
    MAX_BATCH,
    MAX_CONTEXT_TOKENS,
    MAX_SAMPLES,
    MAX_TOP_K,
)

from .models import ExtractionTemplate, format_layers

MAX_LAYER_INDEX = 1023  # no released model is this deep; it bounds "0-99999999" expansion
MAX_IMPORT_BYTES = 5 * 1024 * 1024
# What an import does with a name that exists (the API declares its parameter with this type).
DuplicatePolicy = Literal["skip", "overwrite", "rename"]
ON_DUPLICATE: list[tuple[DuplicatePolicy, str]] = [
    ("skip", "Skip it"),
    ("overwrite", "Overwrite it"),
    ("rename", "Import as “name (2)”"),
]
# Other names for the same settings: the original tool's older exports and the Extraction record.
ALIASES = {
    "layers": "layer_indices",
    "hooks": "hook_types",
    "top_k": "top_k_examples",
    "favorite": "is_favorite",
    "metadata": "extra_metadata",
    "max_length": "context_length",
    "output_dtype": "dtype",
}
FIELDS = [
    "name",
    "description",
    "layer_indices",
    "hook_types",
    "max_samples",
    "batch_size",
    "micro_batch_size",
    "context_length",
    "top_k_examples",
    "context_prefix_tokens",
    "context_suffix_tokens",
    "dtype",
    "is_favorite",
    "extra_metadata",
]
# An unchecked box is absent from an HTML post, so absence there means "none", not "unchanged".
CHECKBOXES = {"hook_types", "is_favorite"}
_PIECE = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def size_refusal(size: int) -> str:
    return (
        f"The file is {size / 1e6:.1f} MB; templates are imported from files of at most "
        f"{MAX_IMPORT_BYTES / 1e6:.0f} MB."
    )


def _layer_piece(piece: Any) -> range:
    if isinstance(piece, bool) or not isinstance(piece, (int, str)):
        raise ValueError(f"“{piece}” is not a layer index: use whole numbers like 3 or ranges like 5-7.")
    text = re.sub(r"\s*-\s*", "-", str(piece).strip())
    if re.fullmatch(r"-[0-9]+", text):
        raise ValueError(f"“{text[:40]}”: layer indices cannot be negative.")
    match = _PIECE.fullmatch(text)
    if not match:
        raise ValueError(f"“{text[:40]}” is not a layer index: use whole numbers like 3 or ranges like 5-7.")
    if max(len(match[1].lstrip("0")), len((match[2] or "").lstrip("0"))) > len(str(MAX_LAYER_INDEX)):
        # Said before int(), which refuses thousands of digits with a message meant for programmers.
        raise ValueError(f"“{text[:40]}”: layer indices go up to {MAX_LAYER_INDEX}.")
    first = int(match[1])
    last = int(match[2]) if match[2] else first
    if last < first:
        raise ValueError(f"“{text}”: write a range from low to high, like {last}-{first}.")
    if last > MAX_LAYER_INDEX:
        raise ValueError(f"“{text}”: layer indices go up to {MAX_LAYER_INDEX}.")
    return range(first, last + 1)


def parse_layers(value: str | list | tuple) -> list[int]:
    """ "0, 2, 5-7" or [0, 2, "5-7"] -> [0, 2, 5, 6, 7], sorted without repeats. One error lists
    every bad piece, so a user fixes them all at once."""
    if isinstance(value, str):
        pieces = [p for p in re.split(r"[,;\s]+", re.sub(r"\s*-\s*", "-", value.strip())) if p]
    elif isinstance(value, (list, tuple)):
        pieces = list(value)
    else:
        raise forms.ValidationError("Enter layer indices like 0, 2, 5-7.", code="invalid")
    layers: set[int] = set()
    errors = []
    for piece in pieces:
        try:
            layers.update(_layer_piece(piece))
        except ValueError as exc:
            errors.append(forms.ValidationError(str(exc), code="invalid"))
    if errors:
        raise forms.ValidationError(errors)
    return sorted(layers)


class LayerInput(forms.TextInput):
    def value_from_datadict(self, data, files, name):
        # A post may send one box per layer (name=layer_indices repeated) instead of the text.
        if hasattr(data, "getlist") and len(data.getlist(name)) > 1:
            return data.getlist(name)
        return data.get(name)


class LayerIndicesField(forms.Field):
    widget = LayerInput
    default_error_messages = {"required": "Choose at least one layer, e.g. 0, 2, 5-7."}

    def to_python(self, value):
        return [] if value in self.empty_values else parse_layers(value)

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            if all(isinstance(i, int) and not isinstance(i, bool) for i in value):
                return format_layers(list(value))
            return ", ".join(str(i) for i in value)
        return value


class HookTypesField(forms.MultipleChoiceField):
    def to_python(self, value):
        if isinstance(value, str):  # "residual, mlp" from a dict or a file
            value = [p for p in re.split(r"[,\s]+", value) if p]
        return super().to_python(value)

    def clean(self, value):
        chosen = super().clean(value)
        return [h for h in HOOK_TYPES if h in chosen]  # one order, whatever order they came in


class MetadataField(forms.JSONField):
    """Typed JSON is parsed with parse_json_limited: the stock field's json.loads fails with a
    RecursionError (a server error) on deep nesting, when cleaning and again when redisplaying."""

    def to_python(self, value):
        if not isinstance(value, str) or value in self.empty_values:
            return super().to_python(value)
        try:
            converted = parse_json_limited(value)
        except UnreadableJson as exc:
            raise forms.ValidationError(f"This value {exc.reason}.", code="invalid") from None
        except json.JSONDecodeError:
            raise forms.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"value": value}
            ) from None
        return JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data, initial):
        # A dict passed in data is already parsed; the stock field would json.loads it again.
        if not isinstance(data, str):
            return data
        try:
            return parse_json_limited(data)
        except ValueError:
            return InvalidJSONInput(data)


def _storable_json_problem(value: Any) -> str | None:
    """Why a parsed JSON value cannot be stored as JSON by every database: NaN and infinities are
    not JSON (parsers accept them), and PostgreSQL's jsonb refuses the NUL character."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return "Numbers must be finite: NaN and Infinity are not JSON."
        if isinstance(item, str) and "\x00" in item:
            return "Text cannot contain the NUL character (\\u0000)."
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _count(
    label: str, low: int, high: int | None, required: bool = True, help_text: str = ""
) -> forms.IntegerField:
    bounds = f"Must be between {low} and {high}." if high is not None else f"Must be at least {low}."
    return forms.IntegerField(
        label=label,
        min_value=low,
        max_value=high,
        required=required,
        help_text=help_text,
        error_messages={
            "min_value": bounds,
            "max_value": bounds,
            "required": "Enter a number.",
            "invalid": "Enter a whole number.",
        },
    )


class TemplateForm(forms.ModelForm):
    """Pass check_unique=False to leave duplicate names to the caller (imports apply a policy).
    A new template's owner is set on `instance` before validation: names are unique among the
    templates it must not repeat (Owned.alike_for)."""

    layer_indices = LayerIndicesField(
        label="Layers", help_text="e.g. 0, 2, 5-7", widget=LayerInput(attrs={"placeholder": "e.g. 0, 2, 5-7"})
    )
    hook_types = HookTypesField(
        label="Hook types",
        choices=HOOK_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": "Choose at least one hook type.",
            "invalid_choice": "“%(value)s” is not a hook type: choose residual, mlp or attention.",
            "invalid_list": "Give the hook types as a list.",
        },
    )
    max_samples = _count("Max samples", 1, MAX_SAMPLES, required=False, help_text="Empty: the whole dataset")
    batch_size = _count("Batch size", 1, MAX_BATCH)
    micro_batch_size = _count(
        "Micro-batch",
        1,
        MAX_BATCH,
        required=False,
        help_text="Samples per forward pass; empty: the batch size",
    )
    context_length = _count("Context length", 1, 1_000_000, help_text="Tokens per sample")
    top_k_examples = _count("Top-k examples", 1, MAX_TOP_K)
    context_prefix_tokens = _count("Tokens before peak", 0, MAX_CONTEXT_TOKENS)
    context_suffix_tokens = _count("Tokens after peak", 0, MAX_CONTEXT_TOKENS)
    extra_metadata = MetadataField(
        label="Extra metadata",
        required=False,
        help_text="A JSON object",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": '{"note": "…"}'}),
        error_messages={"invalid": 'Not valid JSON: write an object such as {"note": "baseline"}.'},
    )

    class Meta:
        model = ExtractionTemplate
        fields = FIELDS
        labels = {"dtype": "Output dtype", "is_favorite": "Favorite"}
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}
        error_messages = {
            "name": {
                "required": "Give the template a name.",
                "max_length": "Keep the name under %(limit_value)d characters.",
            },
            "dtype": {"invalid_choice": f"Choose {' or '.join(DTYPES)}."},
        }

    GROUPS = [
        ("", ["name", "description"]),
        ("What to capture", ["layer_indices", "hook_types"]),
        ("How much", ["max_samples", "batch_size", "micro_batch_size", "context_length"]),
        ("Top examples", ["top_k_examples", "context_prefix_tokens", "context_suffix_tokens"]),
        ("Output", ["dtype", "is_favorite", "extra_metadata"]),
    ]

    def __init__(self, data=None, *args, check_unique: bool = True, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.check_unique = check_unique
        # A new template's form shows the model defaults (declared fields do not read them).
        for name in FIELDS:
            self.initial.setdefault(name, copy.deepcopy(getattr(self.instance, name)))
        if self.is_bound:
            self.data = self._complete(self.data)

    def _complete(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """Aliases become field names, and missing keys take the instance's value (for a new
        template, the model default), so callers pass only what they set."""
        # Data with getlist is a post, a QueryDict (a MultiValueDict): its copy is mutable and keeps
        # each key's every value. Anything else is read as a plain dict.
        post = cast("MultiValueDict[str, Any]", data).copy() if hasattr(data, "getlist") else None
        completed: dict[str, Any] = dict(data) if post is None else post
        if not self.prefix:
            for alias, name in ALIASES.items():
                if alias in completed and name not in completed:
                    if post is not None:
                        post.setlist(name, post.getlist(alias))
                    else:
                        completed[name] = completed.pop(alias)
        for name in FIELDS:
            key = self.add_prefix(name)
            if key in completed or (post is not None and name in CHECKBOXES):
                continue
            value = copy.deepcopy(getattr(self.instance, name))
            if post is not None:
                value = self.fields[name].prepare_value(value)
                completed[key] = "" if value is None else str(value)
            else:
                completed[key] = value
        return completed

    def groups(self) -> list[tuple[str, list]]:
        return [(title, [self[name] for name in names]) for title, names in self.GROUPS]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]  # CharField has already stripped it
        if self.check_unique:
            clash = (
                ExtractionTemplate.objects.alike_for(self.instance.owner)
                .filter(name__iexact=name)
                .exclude(pk=self.instance.pk)
                .first()
            )
            if clash:
                raise forms.ValidationError(
                    f"A template named “{clash.name}” already exists; choose another name.", code="unique"
                )
        return name

    def clean_extra_metadata(self) -> dict:
        value = self.cleaned_data.get("extra_metadata")
        if value is None:
            return {}
        if not isinstance(value, dict):
            kinds = ((bool, "true/false"), (str, "a string"), (list, "a list"))  # bool before int
            kind = next((label for cls, label in kinds if isinstance(value, cls)), "a number")
            raise forms.ValidationError(
                f'Must be a JSON object such as {{"note": "baseline"}}, not {kind}.', code="invalid"
            )
        problem = _storable_json_problem(value)
        if problem:
            raise forms.ValidationError(problem, code="invalid")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # ModelForm.clean returns cleaned_data
        micro, batch = data.get("micro_batch_size"), data.get("batch_size")
        if micro and batch and micro > batch:
            self.add_error("micro_batch_size", f"Must not exceed the batch size ({batch}).")
        return data

    def validate_unique(self) -> None:
        if self.check_unique:
            super().validate_unique()


class ImportForm(forms.Form):
    file = forms.FileField(
        label="JSON file",
        error_messages={"required": "Choose a JSON file to import.", "empty": "The file is empty."},
        widget=forms.ClearableFileInput(attrs={"accept": ".json,application/json"}),
    )
    on_duplicate = forms.ChoiceField(
        label="When a template with the same name exists",
        choices=ON_DUPLICATE,
        initial="skip",
        widget=forms.RadioSelect,
    )

    def clean_file(self):
        uploaded = self.cleaned_data["file"]
        if uploaded.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(size_refusal(uploaded.size))
        return uploaded


SORTS: dict[str, tuple[str, list[str | Combinable]]] = {
    "favorites": ("Favorites first", ["-is_favorite", Lower("name"), "pk"]),
    "name": ("Name", [Lower("name"), "pk"]),
    "newest": ("Newest", ["-created_at", "-pk"]),
    "oldest": ("Oldest", ["created_at", "pk"]),
    "updated": ("Recently updated", ["-updated_at", "-pk"]),
}


class TemplateFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "Search name or description",
                "aria-label": "Search templates",
            }
        ),
    )
    favorites = forms.BooleanField(required=False, label="Favorites only")
    sort = forms.ChoiceField(
        required=False,
        choices=[(k, v[0]) for k, v in SORTS.items()],
        widget=forms.Select(attrs={"aria-label": "Sort"}),
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "filter-%s")  # apart from the template form's ids on the same page
        super().__init__(*args, **kwargs)

    def apply(self, queryset):
        self.is_valid()
        data = getattr(self, "cleaned_data", {})  # the fields that were valid, even if one was not
        if data.get("q"):
            queryset = queryset.filter(Q(name__icontains=data["q"]) | Q(description__icontains=data["q"]))
        if data.get("favorites"):
            queryset = queryset.filter(is_favorite=True)
        return queryset.order_by(*SORTS[data.get("sort") or "favorites"][1])
