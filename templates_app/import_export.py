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

from django.db import IntegrityError, connection, transaction
from django.db.models import Field
from django.http import HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from models_app.json_input import UnreadableJson, parse_json_limited

from . import services
from .forms import ALIASES, FIELDS, MAX_IMPORT_BYTES, ON_DUPLICATE, TemplateForm, size_refusal
from .models import ExtractionTemplate

FORMAT_VERSION = "1.0"
TIMESTAMPS = ("created_at", "updated_at")
IGNORED = {"id"}
POLICIES = tuple(value for value, _ in ON_DUPLICATE)
READ_BATCH = 500


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
        return [
            f"{label}: {item}"
            for label, items in (
                ("Created", self.created),
                ("Updated", self.updated),
                ("Skipped", self.skipped),
            )
            for item in items
        ]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def template_dict(template: ExtractionTemplate) -> dict[str, Any]:
    data = {name: getattr(template, name) for name in FIELDS}
    return {**data, "created_at": _iso(template.created_at), "updated_at": _iso(template.updated_at)}


def export_payload(queryset) -> dict[str, Any]:
    templates = [template_dict(t) for t in queryset]
    return {
        "version": FORMAT_VERSION,
        "export_date": _iso(timezone.now()),
        "count": len(templates),
        "templates": templates,
    }


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
            return parse_json_limited(data)
        except UnreadableJson as exc:
            raise ImportRefused([f"The file {exc.reason}."]) from None
        except json.JSONDecodeError as exc:
            raise ImportRefused(
                [f"The file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."]
            ) from None
    return data


@dataclass
class _Entry:
    index: int
    form: TemplateForm
    stamps: dict[str, datetime]


def _message(text: str) -> str:
    return (text[:1].lower() + text[1:]).removesuffix(".")


def _read_keys(
    raw: dict[str, Any], label: str, problems: list[str]
) -> tuple[dict[str, Any], dict[str, str], dict[str, datetime]]:
    """The file's values under field names, the key each came under, and its timestamps."""
    values: dict[str, Any] = {}
    keys: dict[str, str] = {}
    stamps: dict[str, datetime] = {}
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


def _check_types(values: dict[str, Any], keys: dict[str, str], label: str, problems: list[str]) -> set[str]:
    """Reports and drops values of the wrong JSON type: Django's fields would quietly turn 5 into
    "5" or "yes" into True, and a file should say what it means."""
    bad: set[str] = {
        name
        for name in ("name", "description", "dtype")
        if name in values
        and not isinstance(values[name], str)
        and not (name == "description" and values[name] is None)
    }
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
    defaults = {f: _field(f).get_default() for f in FIELDS}
    form = TemplateForm(data={**defaults, **values}, check_unique=False)
    if form.is_valid() and not problems:
        return _Entry(index, form, stamps), []
    for field_name, errors in form.errors.items():
        if field_name in bad_types:
            continue  # already reported as the wrong type
        place = f"{keys.get(field_name, field_name)}: " if field_name != "__all__" else ""
        problems.extend(f"{label}: {place}{_message(str(e))}" for e in errors)  # an ErrorList yields text
    return None, problems


def validate_payload(payload: Any) -> list[_Entry]:
    """Every template checked; raises ImportRefused listing every problem, or returns them all."""
    if not isinstance(payload, dict):
        raise ImportRefused(['The file must hold a JSON object with "version" and "templates".'])
    problems = []
    if "version" not in payload:
        problems.append(f'The file has no "version"; this studio reads version {FORMAT_VERSION} files.')
    elif payload["version"] != FORMAT_VERSION:
        problems.append(
            f"The file is version {payload['version']!r}; this studio reads version {FORMAT_VERSION} files."
        )
    templates = payload.get("templates")
    if not isinstance(templates, list):
        raise ImportRefused(problems + ['The file has no "templates" list.'])
    entries: list[_Entry] = []
    seen: dict[str, int] = {}  # casefolded name -> the index of the first template with it
    for index, raw in enumerate(templates, start=1):
        entry, entry_problems = _validate_template(index, raw)
        problems.extend(entry_problems)
        if entry is None:
            continue
        name = entry.form.cleaned_data["name"]
        if name.casefold() in seen:
            problems.append(
                f"template {index} ({name!r}): name: the file already has a template named "
                f"{name!r} (template {seen[name.casefold()]})"
            )
        seen.setdefault(name.casefold(), index)
        entries.append(entry)
    if problems:
        raise ImportRefused(problems)
    return entries


@dataclass
class _Plan:
    """What an import will write, decided before the first write."""

    summary: ImportSummary = field(default_factory=ImportSummary)
    creates: list[ExtractionTemplate] = field(default_factory=list)
    stamps: list[tuple[ExtractionTemplate, dict[str, datetime]]] = field(default_factory=list)
    updates: list[ExtractionTemplate] = field(default_factory=list)

    def create(self, entry: _Entry, name: str, owner, note: str = "") -> None:
        template = entry.form.instance
        template.name, template.owner = name, owner
        self.creates.append(template)
        if entry.stamps:
            self.stamps.append((template, entry.stamps))
        self.summary.created.append(Imported(entry.index, name, note))

    def statements(self) -> list[tuple[str, list[list]]]:
        """The writes, as statements each run for every row of their values, made ready before
        the transaction so that it holds the database only while they run. Django's bulk_create
        would stamp created_at itself and need a second pass for the file's own dates, and its
        bulk_update writes a CASE per field and row, which takes SQLite many seconds for a few
        thousand rows."""
        now = timezone.now()
        for template in self.creates:
            template.created_at = template.updated_at = now
        for template, stamps in self.stamps:
            for name, moment in stamps.items():
                setattr(template, name, moment)
        for template in self.updates:
            template.updated_at = now
        meta, quote = ExtractionTemplate._meta, connection.ops.quote_name
        inserted = [f for f in meta.concrete_fields if not f.primary_key]
        updated = [_field(name) for name in [*FIELDS, "updated_at"]]
        columns, table = ", ".join(_column(f) for f in inserted), quote(meta.db_table)
        assignments = ", ".join(f"{_column(f)} = %s" for f in updated)
        return [
            (
                f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(inserted))})",
                [_values(t, inserted) for t in self.creates],
            ),
            (
                f"UPDATE {table} SET {assignments} WHERE {_column(meta.pk)} = %s",
                [_values(t, updated) + [t.pk] for t in self.updates],
            ),
        ]


def _field(name: str) -> Field[Any, Any]:
    """A template's own field (FIELDS and the timestamps are columns, none a relation's other end)."""
    found = ExtractionTemplate._meta.get_field(name)
    assert isinstance(found, Field)
    return found


def _column(model_field: Field[Any, Any]) -> str:
    """A concrete field's column name, quoted (every concrete field has a column)."""
    assert model_field.column is not None
    return connection.ops.quote_name(model_field.column)


def _values(template: ExtractionTemplate, fields: list[Field[Any, Any]]) -> list[Any]:
    return [f.get_db_prep_save(getattr(template, f.attname), connection) for f in fields]


def _write(statements: list[tuple[str, list[list]]]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        for statement, rows in statements:
            if rows:
                cursor.executemany(statement, rows)


def _plan(entries: list[_Entry], on_duplicate: str, user, owner) -> _Plan:
    """Match the file's names against those `user`'s templates must not repeat (case-insensitively,
    one read of the names; Owned.alike_for), and decide each template's fate by the policy."""
    existing = {
        name.casefold(): ExtractionTemplate(pk=pk, name=name, owner_id=owner_id)
        for pk, name, owner_id in ExtractionTemplate.objects.alike_for(user).values_list(
            "pk", "name", "owner_id"
        )
    }
    taken = set(existing) | {entry.form.cleaned_data["name"].casefold() for entry in entries}
    plan, overwrites = _Plan(), {}
    for entry in entries:
        name = entry.form.cleaned_data["name"]
        found = existing.get(name.casefold())
        if found is None:
            plan.create(entry, name, owner)
        elif on_duplicate == "skip":
            plan.summary.skipped.append(Imported(entry.index, found.name, "a template with this name exists"))
        elif on_duplicate == "overwrite" and user is not None and not found.may_change(user):
            plan.summary.skipped.append(
                Imported(entry.index, found.name, "a template with this name belongs to someone else")
            )
        elif on_duplicate == "overwrite":
            overwrites[found.pk] = entry
            plan.summary.updated.append(Imported(entry.index, name))
        else:
            new_name = services.first_free_name(name, taken)
            taken.add(new_name.casefold())
            plan.create(entry, new_name, owner, f"renamed from {name!r}")
    pks = list(overwrites)
    for start in range(0, len(pks), READ_BATCH):
        for template in ExtractionTemplate.objects.filter(pk__in=pks[start : start + READ_BATCH]):
            for field_name in FIELDS:
                setattr(template, field_name, overwrites[template.pk].form.cleaned_data[field_name])
            plan.updates.append(template)
    return plan


def import_payload(data: Any, on_duplicate: str = "skip", user=None) -> ImportSummary:
    """Import a file's templates: `data` is the raw bytes or text of the file, or its parsed JSON.
    Raises ImportRefused (nothing written) if any template is invalid. `user` owns what is
    created, and overwrites only what they may change; None (the terminal) is the operator.

    Everything is checked and planned before the first write, and the writes are two statements
    run for every row in one short transaction, so an import of thousands never holds the database while
    other requests (a running extraction's progress among them) wait to write."""
    owner = user if user is not None and user.is_authenticated else None
    if on_duplicate not in POLICIES:
        raise ValueError(f"on_duplicate must be one of {', '.join(POLICIES)}, not {on_duplicate!r}")
    entries = validate_payload(_load(data))
    for _attempt in range(3):
        plan = _plan(entries, on_duplicate, user, owner)
        try:
            _write(plan.statements())
            return plan.summary
        except IntegrityError:
            continue  # someone took one of these names meanwhile: plan again with theirs
    raise ImportRefused(["Templates with these names kept appearing while the file was imported: try again."])
