from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from templates_app import import_export
from templates_app.forms import FIELDS
from templates_app.models import ExtractionTemplate
from tests.templates_app.original_export import ORIGINAL_EXPORT

pytestmark = pytest.mark.django_db


def payload(*templates, version="1.0") -> dict:
    return {"version": version, "templates": list(templates)}


def tpl(name: str, **fields) -> dict:
    return {"name": name, "layer_indices": [0], "hook_types": ["residual"], **fields}


def refusal(data, policy="skip") -> list[str]:
    with pytest.raises(import_export.ImportRefused) as caught:
        import_export.import_payload(data, policy)
    return caught.value.problems


def test_it_exports_the_documented_format(make_template):
    make_template("a", description="d", extra_metadata={"x": [1]}, micro_batch_size=4, batch_size=8)
    data = import_export.export_payload(ExtractionTemplate.objects.all())
    assert data["version"] == "1.0" and data["count"] == 1
    assert datetime.fromisoformat(data["export_date"]).tzinfo is not None and data["export_date"].endswith(
        "Z"
    )
    assert list(data["templates"][0]) == [*FIELDS, "created_at", "updated_at"]
    assert (
        data["templates"][0]["extra_metadata"] == {"x": [1]} and data["templates"][0]["micro_batch_size"] == 4
    )
    assert (
        import_export.export_filename(datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC))
        == "extraction_templates_20250304_050607.json"
    )


def test_export_then_import_gives_back_every_field(make_template):
    make_template(
        "first",
        description="all of it",
        layer_indices=[0, 3, 4, 5],
        hook_types=["residual", "attention"],
        max_samples=None,
        batch_size=64,
        micro_batch_size=16,
        context_length=512,
        top_k_examples=50,
        context_prefix_tokens=0,
        context_suffix_tokens=500,
        dtype="float32",
        is_favorite=True,
        extra_metadata={"nested": {"a": [1, 2]}, "unicode": "é✓"},
    )
    make_template("second", max_samples=7)
    fields = [*FIELDS, "created_at"]
    before = list(ExtractionTemplate.objects.order_by("name").values(*fields))
    raw = import_export.export_bytes(ExtractionTemplate.objects.all())
    ExtractionTemplate.objects.all().delete()
    summary = import_export.import_payload(raw)
    assert (
        [i.name for i in summary.created] == ["first", "second"]
        and not summary.updated
        and not summary.skipped
    )
    assert list(ExtractionTemplate.objects.order_by("name").values(*fields)) == before


def test_skip_leaves_existing_templates_alone(make_template):
    make_template("Keep", batch_size=8)
    summary = import_export.import_payload(payload(tpl("keep", batch_size=99), tpl("new")), "skip")
    assert [(i.index, i.name) for i in summary.skipped] == [(1, "Keep")] and [
        i.name for i in summary.created
    ] == ["new"]
    assert ExtractionTemplate.objects.get(name="Keep").batch_size == 8
    assert str(summary) == "1 created, 0 updated, 1 skipped"


def test_overwrite_replaces_the_settings_of_the_existing_template(make_template):
    existing = make_template("Keep", batch_size=8, context_length=512, description="old")
    summary = import_export.import_payload(payload(tpl("keep", batch_size=99)), "overwrite")
    assert [(i.index, i.name) for i in summary.updated] == [(1, "keep")]
    existing.refresh_from_db()
    # The file's template replaces it whole: a field the file leaves out takes its default.
    assert (existing.name, existing.batch_size, existing.context_length, existing.description) == (
        "keep",
        99,
        128,
        "",
    )
    assert ExtractionTemplate.objects.count() == 1


def test_rename_numbers_the_imported_copy(make_template):
    make_template("probe")
    make_template("probe (2)")
    summary = import_export.import_payload(payload(tpl("probe"), tpl("PROBE (3)"), tpl("other")), "rename")
    created = [(i.index, i.name, i.note) for i in summary.created]
    # "probe (3)" is in the file, so the renamed copy does not take it.
    assert created == [(1, "probe (4)", "renamed from 'probe'"), (2, "PROBE (3)", ""), (3, "other", "")]
    assert ExtractionTemplate.objects.count() == 5


def test_it_renames_an_imported_numbered_name_from_its_base(make_template):
    make_template("my probe")
    make_template("my probe (2)")
    summary = import_export.import_payload(payload(tpl("my probe (2)")), "rename")
    assert [(i.name, i.note) for i in summary.created] == [("my probe (3)", "renamed from 'my probe (2)'")]


def test_it_imports_an_export_of_the_original_tool():
    summary = import_export.import_payload(json.dumps(ORIGINAL_EXPORT).encode())
    assert len(summary.created) == 2
    sweep = ExtractionTemplate.objects.get(name="Residual sweep")
    assert (
        sweep.description,
        sweep.extra_metadata,
        sweep.layer_indices,
        sweep.max_samples,
        sweep.batch_size,
        sweep.top_k_examples,
        sweep.is_favorite,
    ) == ("", {}, [0, 4, 8], 1000, 32, 20, True)
    assert (sweep.micro_batch_size, sweep.context_length, sweep.context_prefix_tokens, sweep.dtype) == (
        None,
        128,
        25,
        "float16",
    )
    probe = ExtractionTemplate.objects.get(name="MLP probe")
    assert (
        probe.hook_types == ["mlp", "attention"]
        and probe.max_samples is None
        and probe.extra_metadata == {"author": "ada"}
    )


def test_it_accepts_ids_timestamps_and_older_key_names():
    ExtractionTemplate.objects.create(pk=41, name="holds id 41", layer_indices=[0], hook_types=["mlp"])
    data = payload(
        {
            "id": 41,
            "name": "old keys",
            "layers": "1-3",
            "hooks": ["mlp"],
            "top_k": 5,
            "favorite": True,
            "metadata": {"m": 1},
            "max_length": 64,
            "output_dtype": "float32",
            "created_at": "2024-01-02T03:04:05Z",
            "updated_at": "2024-02-02T03:04:05",
        }
    )
    import_export.import_payload(data)
    t = ExtractionTemplate.objects.get(name="old keys")
    assert (
        t.layer_indices,
        t.hook_types,
        t.top_k_examples,
        t.is_favorite,
        t.extra_metadata,
        t.context_length,
        t.dtype,
    ) == ([1, 2, 3], ["mlp"], 5, True, {"m": 1}, 64, "float32")
    assert (
        t.pk != 41 and ExtractionTemplate.objects.get(pk=41).name == "holds id 41"
    )  # the file's id is ignored
    assert t.created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert t.updated_at == datetime(2024, 2, 2, 3, 4, 5, tzinfo=UTC)


def test_it_refuses_malformed_json_naming_the_line_and_column():
    problems = refusal(b'{"version": "1.0",\n  "templates": [\n    {"name": "a",}\n  ]\n}')
    assert problems == [
        "The file is not valid JSON: Expecting property name enclosed in double quotes at line 3, column 18."
    ]
    assert refusal(b"") == ["The file is not valid JSON: Expecting value at line 1, column 1."]
    assert refusal(b"\xff\xfe{}") == ["The file is not UTF-8 text (byte 1 is not)."]


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"templates": []}, 'The file has no "version"; this studio reads version 1.0 files.'),
        (
            {"version": "2.0", "templates": []},
            "The file is version '2.0'; this studio reads version 1.0 files.",
        ),
        ({"version": "1.0"}, 'The file has no "templates" list.'),
        ({"version": "1.0", "templates": {"a": 1}}, 'The file has no "templates" list.'),
        ([1, 2], 'The file must hold a JSON object with "version" and "templates".'),
    ],
)
def test_it_refuses_a_file_without_the_right_frame(data, problem):
    assert problem in refusal(data)


def test_it_lists_every_bad_template_and_writes_nothing(make_template):
    make_template("existing", batch_size=8)
    data = payload(
        tpl("fine"),
        tpl("big", batch_size=600),
        tpl("odd", colour="red", layers=[1], layer_indices=[2]),
        tpl("hooks", hook_types=["logits"], layer_indices="0, x"),
        "not an object",
        tpl("", top_k=0),
        tpl("existing", batch_size=16),
        tpl("Fine"),
        tpl("types", is_favorite="yes", description=5, batch_size=0),
        {"name": 7, "layer_indices": [0]},
        version="0.9",
    )
    problems = refusal(data, "overwrite")
    assert problems == [
        "The file is version '0.9'; this studio reads version 1.0 files.",
        "template 2 ('big'): batch_size: must be between 1 and 512",
        "template 3 ('odd'): unknown field 'colour'",
        "template 3 ('odd'): 'layers' and 'layer_indices' are the same field; give it once",
        "template 4 ('hooks'): layer_indices: “x” is not a layer index: "
        "use whole numbers like 3 or ranges like 5-7",
        "template 4 ('hooks'): hook_types: “logits” is not a hook type: choose residual, mlp or attention",
        "template 5: must be an object, not str",
        "template 6 (''): name: give the template a name",
        "template 6 (''): top_k: must be between 1 and 1000",
        "template 8 ('Fine'): name: the file already has a template named 'Fine' (template 1)",
        "template 9 ('types'): description: must be a string",
        "template 9 ('types'): is_favorite: must be true or false",
        "template 9 ('types'): batch_size: must be between 1 and 512",
        "template 10: name: must be a string",
        "template 10: hook_types: choose at least one hook type",
    ]
    assert list(ExtractionTemplate.objects.values_list("name", "batch_size")) == [("existing", 8)]


def test_a_failure_while_writing_leaves_nothing_behind(monkeypatch):
    """A disk that fills between the import's statements cannot be made here: the second one
    fails by hand, after the first has inserted every row."""

    from django.db.backends.utils import CursorWrapper

    executemany = CursorWrapper.executemany

    def disk_full(cursor, statement, rows):
        if statement.startswith("UPDATE"):
            assert ExtractionTemplate.objects.count() == 3  # inserted, not yet committed
            raise RuntimeError("disk full")
        return executemany(cursor, statement, rows)

    monkeypatch.setattr(CursorWrapper, "executemany", disk_full)
    ExtractionTemplate.objects.create(name="one", batch_size=1)
    with pytest.raises(RuntimeError):
        import_export.import_payload(payload(tpl("one"), tpl("two"), tpl("three")), "overwrite")
    assert list(ExtractionTemplate.objects.values_list("name", "batch_size")) == [("one", 1)]


def test_it_refuses_files_over_the_size_cap():
    big = json.dumps(payload(tpl("x", description="y" * (5 * 1024 * 1024)))).encode()
    assert refusal(big) == ["The file is 5.2 MB; templates are imported from files of at most 5 MB."]
    assert not ExtractionTemplate.objects.exists()


def test_it_refuses_an_unknown_policy():
    with pytest.raises(ValueError, match="on_duplicate must be one of skip, overwrite, rename"):
        import_export.import_payload(payload(), "merge")
