"""JSON export and import of templates, shared by the Templates tab, the admin and the
export_templates / import_templates commands.

The file format is the original tool's, version 1.0:
    {"version": "1.0", "export_date": "<ISO 8601 UTC>", "count": n, "templates": [{...}, ...]}
Its exports carry only name, description, layer_indices, hook_types, max_samples, batch_size,
top_k_examples, is_favorite and extra_metadata (description and extra_metadata may be null);
missing fields take the model defaults. "id", "created_at" and "updated_at" are accepted (the
timestamps are kept for templates the import creates), and so are the older key names in
forms.ALIASES.

An import is all or nothing: every template is validated (through TemplateForm) before anything
is written, and a file with any problem is refused with every problem listed. Names that already
exist are then handled by the policy: skip, overwrite, or rename to "name (2)".
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import services
from .forms import ALIASES, FIELDS, MAX_IMPORT_BYTES, ON_DUPLICATE, TemplateForm, size_refusal
from .models import ExtractionTemplate

FORMAT_VERSION = "1.0"
TIMESTAMPS = ("created_at", "updated_at")
IGNORED = {"id"}
POLICIES = tuple(value for value, _ in ON_DUPLICATE)


class ImportRefused(Exception):
    """The file was not imported; `problems` says why, one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Imported:
    index: int  # 1-based position in the file
    name: str  # the name it has in the studio now
    note: str = ""

    def __str__(self) -> str:
        return f"template {self.index} ({self.name!r})" + (f": {self.note}" if self.note else "")


@dataclass
class ImportSummary:
    created: list[Imported] = field(default_factory=list)
    updated: list[Imported] = field(default_factory=list)
    skipped: list[Imported] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.created)} created, {len(self.updated)} updated, {len(self.skipped)} skipped"

    def lines(self) -> list[str]:
        return [f"{label}: {item}" for label, items in (("Created", self.created), ("Updated", self.updated),
                                                          ("Skipped", self.skipped)) for item in items]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def template_dict(template: ExtractionTemplate) -> dict[str, Any]:
    data = {name: getattr(template, name) for name in FIELDS}
    return {**data, "created_at": _iso(template.created_at), "updated_at": _iso(template.updated_at)}


def export_payload(queryset) -> dict[str, Any]:
    templates = [template_dict(t) for t in queryset]
    return {"version": FORMAT_VERSION, "export_date": _iso(timezone.now()), "count": len(templates),
            "templates": templates}


def export_bytes(queryset) -> bytes:
    return json.dumps(export_payload(queryset), indent=2, ensure_ascii=False).encode()


def export_filename(now: datetime | None = None) -> str:
    return f"extraction_templates_{(now or timezone.now()).astimezone(UTC):%Y%m%d_%H%M%S}.json"


def export_response(queryset) -> HttpResponse:
    response = HttpResponse(export_bytes(queryset), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{export_filename()}"'
    return response


def _load(data: Any) -> Any:
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        if len(data) > MAX_IMPORT_BYTES:
            raise ImportRefused([size_refusal(len(data))])
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportRefused([f"The file is not UTF-8 text (byte {exc.start + 1} is not)."]) from None
    if isinstance(data, str):
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            raise ImportRefused([f"The file is not valid JSON: {exc.msg} at line {exc.lineno}, "
                                 f"column {exc.colno}."]) from None
    return data


@dataclass
class _Entry:
    index: int
    form: TemplateForm
    stamps: dict[str, datetime]


def _message(text: str) -> str:
    return (text[:1].lower() + text[1:]).removesuffix(".")


def _read_keys(raw: dict, label: str, problems: list[str]) -> tuple[dict, dict, dict]:
    values, keys, stamps = {}, {}, {}
    for key, value in raw.items():
        name = ALIASES.get(key, key)
        if key in IGNORED:
            continue
        if key in TIMESTAMPS:
            moment = parse_datetime(value) if isinstance(value, str) else None
            if value is not None and moment is None:
                problems.append(f"{label}: {key}: not an ISO 8601 date and time")
            elif moment is not None:
                stamps[key] = moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)
        elif name not in FIELDS:
            problems.append(f"{label}: unknown field {key!r}")
        elif name in values:
            problems.append(f"{label}: {key!r} and {keys[name]!r} are the same field; give it once")
        else:
            values[name], keys[name] = value, key
    return values, keys, stamps


def _check_types(values: dict, keys: dict, label: str, problems: list[str]) -> set[str]:
    """Reports and drops values of the wrong JSON type: Django's fields would quietly turn 5 into
    "5" or "yes" into True, and a file should say what it means."""
    bad = {name for name in ("name", "description", "dtype") if name in values
           and not isinstance(values[name], str) and not (name == "description" and values[name] is None)}
    problems.extend(f"{label}: {keys[name]}: must be a string" for name in sorted(bad))
    if "is_favorite" in values and not isinstance(values["is_favorite"], bool):
        problems.append(f"{label}: {keys['is_favorite']}: must be true or false")
        bad.add("is_favorite")
    for name in bad:
        del values[name]
    return bad


def _validate_template(index: int, raw: Any) -> tuple[_Entry | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"template {index}: must be an object, not {type(raw).__name__}"]
    name = raw.get("name")
    label = f"template {index} ({name!r})" if isinstance(name, str) else f"template {index}"
    problems: list[str] = []
    values, keys, stamps = _read_keys(raw, label, problems)
    bad_types = _check_types(values, keys, label, problems)
    for field_name, empty in (("description", ""), ("extra_metadata", {})):  # the original tool writes null
        if values.get(field_name, empty) is None:
            values[field_name] = empty
    defaults = {f: ExtractionTemplate._meta.get_field(f).get_default() for f in FIELDS}
    form = TemplateForm(data={**defaults, **values}, check_unique=False)
    if form.is_valid() and not problems:
        return _Entry(index, form, stamps), []
    for field_name, errors in form.errors.items():
        if field_name in bad_types:
            continue  # already reported as the wrong type
        place = f"{keys.get(field_name, field_name)}: " if field_name != "__all__" else ""
        problems.extend(f"{label}: {place}{_message(e)}" for e in errors)
    return None, problems


def validate_payload(payload: Any) -> list[_Entry]:
    """Every template checked; raises ImportRefused listing every problem, or returns them all."""
    if not isinstance(payload, dict):
        raise ImportRefused(['The file must hold a JSON object with "version" and "templates".'])
    problems = []
    if "version" not in payload:
        problems.append(f'The file has no "version"; this studio reads version {FORMAT_VERSION} files.')
    elif payload["version"] != FORMAT_VERSION:
        problems.append(f"The file is version {payload['version']!r}; this studio reads version "
                        f"{FORMAT_VERSION} files.")
    templates = payload.get("templates")
    if not isinstance(templates, list):
        raise ImportRefused(problems + ['The file has no "templates" list.'])
    entries, seen = [], {}
    for index, raw in enumerate(templates, start=1):
        entry, entry_problems = _validate_template(index, raw)
        problems.extend(entry_problems)
        if entry is None:
            continue
        name = entry.form.cleaned_data["name"]
        if name.casefold() in seen:
            problems.append(f"template {index} ({name!r}): name: the file already has a template named "
                            f"{name!r} (template {seen[name.casefold()]})")
        seen.setdefault(name.casefold(), index)
        entries.append(entry)
    if problems:
        raise ImportRefused(problems)
    return entries


def _create(entry: _Entry, name: str, owner) -> ExtractionTemplate:
    template = entry.form.instance
    template.name, template.owner = name, owner
    template.save()
    if entry.stamps:  # auto_now fields are set on save; the file's own dates are written after
        ExtractionTemplate.objects.filter(pk=template.pk).update(**entry.stamps)
    return template


def import_payload(data: Any, on_duplicate: str = "skip", user=None) -> ImportSummary:
    """Import a file's templates: `data` is the raw bytes or text of the file, or its parsed JSON.
    Raises ImportRefused (nothing written) if any template is invalid. `user` owns what is
    created, and overwrites only what they may change; None (the terminal) is the operator."""
    owner = user if user is not None and user.is_authenticated else None
    if on_duplicate not in POLICIES:
        raise ValueError(f"on_duplicate must be one of {', '.join(POLICIES)}, not {on_duplicate!r}")
    entries = validate_payload(_load(data))
    summary = ImportSummary()
    reserved = [e.form.cleaned_data["name"] for e in entries]  # renames avoid names still to come
    with transaction.atomic():
        for entry in entries:
            name = entry.form.cleaned_data["name"]
            existing = ExtractionTemplate.objects.filter(name__iexact=name).first()
            if existing is None:
                summary.created.append(Imported(entry.index, _create(entry, name, owner).name))
            elif on_duplicate == "skip":
                summary.skipped.append(Imported(entry.index, existing.name, "a template with this name exists"))
            elif on_duplicate == "overwrite" and user is not None and not existing.may_change(user):
                summary.skipped.append(Imported(entry.index, existing.name,
                                                "a template with this name belongs to someone else"))
            elif on_duplicate == "overwrite":
                for field_name, value in entry.form.cleaned_data.items():
                    setattr(existing, field_name, value)
                existing.save()
                summary.updated.append(Imported(entry.index, existing.name))
            else:
                new_name = services.available_name(name, reserved)
                reserved.append(new_name)
                summary.created.append(Imported(entry.index, _create(entry, new_name, owner).name,
                                                f"renamed from {name!r}"))
    return summary
