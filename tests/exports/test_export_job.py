"""The export job: cancelled while it writes (through the record, as the page's Cancel does), it
ends cancelled and leaves no folder; its extraction cannot be deleted while it reads it; deleting
the extraction deletes its exports, wherever the terminal put them; and open pages hear of it."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from models_app.consumers import render_update
from models_app.forms.exports import ExportForm
from models_app.jobs import export as export_job
from models_app.models import ActivationExport, StillRunning

pytestmark = pytest.mark.django_db(transaction=True)


def queued(extraction, **data) -> ActivationExport:
    form = ExportForm(data, extraction=extraction)
    assert form.is_valid(), form.errors
    return form.create(queue=False)


def test_a_cancel_stops_it_between_batches_and_removes_what_it_wrote(completed, monkeypatch):
    record = completed()
    export = queued(record, format="tokens")
    real_export = export_job.exports.export
    seen = []

    def cancelled_after_the_first_batch(fmt, folder, out, *, on_progress, should_cancel, **options):
        def progress(report):
            seen.append(report.tokens_done)
            if len(seen) == 1:
                assert export.folder.with_name(export.folder.name + ".partial").is_dir()
                ActivationExport.objects.get(pk=export.pk).request_cancel()
                while not should_cancel():  # the job's watcher reads the record every 0.5 s
                    pass
            on_progress(report)

        # Batches of a few tokens, so that the cancel lands with most of the export unwritten.
        return real_export(
            fmt, folder, out, on_progress=progress, should_cancel=should_cancel, batch_bytes=4096, **options
        )

    monkeypatch.setattr(export_job.exports, "export", cancelled_after_the_first_batch)
    assert export_job.run_export(export.pk) == "cancelled"
    export.refresh_from_db()
    assert export.status == "cancelled" and len(seen) == 1
    assert not (record.output_dir / "exports").exists() or not any((record.output_dir / "exports").iterdir())


def test_an_extraction_is_not_deleted_while_an_export_reads_it(completed):
    record = completed()
    export = queued(record, format="tokens")
    with pytest.raises(
        StillRunning, match=f"Export {export.pk} is reading this extraction: cancel it first."
    ):
        record.delete_with_files()
    assert record.output_dir.is_dir()


def test_deleting_the_extraction_deletes_its_exports_wherever_they_are(completed, tmp_path):
    record = completed()
    call_command("export_activations", record.pk, "--format", "tokens", "--out", tmp_path / "elsewhere")
    inside = queued(record, format="saelens")
    export_job.run_export(inside.pk)
    assert (tmp_path / "elsewhere" / "manifest.json").is_file() and inside.folder.is_dir()
    freed = record.delete_with_files()
    assert not (tmp_path / "elsewhere").exists() and not record.output_dir.exists()
    assert not ActivationExport.objects.exists() and freed > 0


def test_open_pages_get_the_exports_section_and_lose_a_deleted_export(completed):
    record = completed()
    export = queued(record, format="tokens")
    export_job.run_export(export.pk)
    (section,), owner_id = render_update("export", export.pk)
    assert section.startswith(f'<section id="extraction-{record.pk}-exports"')
    assert 'hx-swap-oob="morph"' in section and f'id="export-{export.pk}"' in section
    assert owner_id == record.owner_id
    export.delete_with_files()
    assert render_update("export", export.pk, deleted=True) == (
        [f'<div id="export-{export.pk}" hx-swap-oob="delete"></div>'],
        None,
    )
