"""manage.py retry_extraction ID: the Retry of an extraction's page, in this process, with a
terminal progress bar. A failed or cancelled extraction whose folder holds a checkpoint continues
from it; otherwise it starts over."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import CommandError

from models_app.jobs.extraction import run_extraction
from models_app.models import Extraction, ExtractionStatus
from models_app.services import extractions

from ._progress import JobCommand, run_job_with_bar
from .extract_activations import Command as ExtractCommand


class Command(JobCommand):
    help = (
        "Run a failed or cancelled extraction again: from its checkpoint (the samples it had done)"
        " when its folder holds one, else from the start."
    )
    cancelled_message = ExtractCommand.cancelled_message
    cancelled_line = ExtractCommand.cancelled_line

    def add_arguments(self, parser) -> None:
        parser.add_argument("extraction_id", type=int, help="the extraction's id (its folder's name)")

    def handle(self, *args, **options) -> None:
        Extraction.fail_stale()  # a run whose process was killed is failed here, as a page would
        record = Extraction.objects.filter(pk=options["extraction_id"]).first()
        if record is None:
            raise CommandError(f"No extraction with id {options['extraction_id']}.")
        if record.is_active:
            raise CommandError(
                f"Extraction {record.pk} is {record.get_status_display().lower()}. If the process"
                f" running it was killed, it counts as stopped once it has been silent for"
                f" {settings.JOB_STALE_SECONDS} s: retry then."
            )
        if not record.can_retry:
            raise CommandError(
                f"Extraction {record.pk} is {record.get_status_display().lower()}:"
                " only a failed or cancelled one can be retried."
            )
        point = record.resume_point
        with self.stops.held():  # from here a stop cancels the record's job: none is left queued
            extractions.retry(record, queue=False)
            start = f"from sample {point['samples_done']}" if point else "from the start"
            self.stdout.write(
                f"Extraction {record.pk}: {record.model.name} on {record.dataset.name}, {start}"
            )
            run_job_with_bar(self, run_extraction, record, "show_extraction")
        if record.status != ExtractionStatus.COMPLETED:
            raise CommandError(record.error_message or f"Extraction {record.get_status_display().lower()}.")
        meta = record.metadata
        resumed = meta.get("resumed_from_sample")
        detail = f", continued from sample {resumed}" if resumed is not None else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Completed: {record.samples_done} samples{detail} in {meta['timings']['seconds']:.1f}s"
                f" -> {record.output_path}"
            )
        )
