"""manage.py extract_activations MODEL_ID --dataset ID --layers 0,5,11 --hooks residual,mlp
[--batch-size --micro-batch-size --max-samples --context-length --top-k --dtype]: the page's job,
in this process, with a terminal progress bar."""

from __future__ import annotations

from argparse import ArgumentDefaultsHelpFormatter

from django.core.management.base import CommandError

from models_app.forms.extractions import ExtractionForm
from models_app.jobs.extraction import run_extraction
from models_app.ml.vocabulary import DTYPES
from models_app.models import ExtractionStatus

from ._lookup import add_model_id_argument, get_model
from ._progress import JobCommand, run_job_with_bar


def resumable_line(record) -> str | None:
    """What a stopped extraction that kept a checkpoint says: how far it got, and how to go on."""
    point = record.resume_point
    if point is None:
        return None
    return (
        f"Cancelled: {point['samples_done']} of {point['samples_total']} samples are kept;"
        f" `manage.py retry_extraction {record.pk}` continues from them."
    )


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Command(JobCommand):
    help = "Extract activations of a ready model over a dataset into data/activations/{id}/."
    cancelled_message = "Cancelled: the extraction stopped and its files were removed."

    def cancelled_line(self, record) -> str:
        return resumable_line(record) or self.cancelled_message

    def add_arguments(self, parser) -> None:
        parser.formatter_class = ArgumentDefaultsHelpFormatter
        add_model_id_argument(parser)
        parser.add_argument("--dataset", required=True, type=int)
        parser.add_argument("--layers", required=True, help="comma-separated, e.g. 0,5,11")
        parser.add_argument("--hooks", default="residual", type=str.lower, help="residual,mlp,attention")
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument(
            "--micro-batch-size", type=int, help="samples per forward pass (default: the batch size)"
        )
        parser.add_argument("--max-samples", type=int)
        parser.add_argument("--context-length", type=int, default=128)
        parser.add_argument("--top-k", type=int, default=10)
        parser.add_argument("--dtype", default="float16", type=str.lower, choices=DTYPES)

    def handle(self, *args, **options) -> None:
        model = get_model(options["model_id"])
        data = {
            "dataset": options["dataset"],
            "layers": _csv(options["layers"]),
            "hooks": _csv(options["hooks"]),
            "batch_size": options["batch_size"],
            "max_samples": "" if options["max_samples"] is None else options["max_samples"],
            "context_length": options["context_length"],
            "top_k": options["top_k"],
            "dtype": options["dtype"],
            "micro_batch_size": options["micro_batch_size"] or "",
        }
        form = ExtractionForm(data, model=model)
        if not form.is_valid():
            raise CommandError(" ".join(str(e) for errors in form.errors.values() for e in errors))
        with self.stops.held():  # from here a stop cancels the record's job: none is left queued
            record = form.create(queue=False)
            self.stdout.write(f"Extraction {record.pk}: {model.name} on {record.dataset.name}")
            run_job_with_bar(self, run_extraction, record, "show_extraction")
        if record.status != ExtractionStatus.COMPLETED:
            raise CommandError(record.error_message or f"Extraction {record.get_status_display().lower()}.")
        seconds = record.metadata["timings"]["seconds"]
        self.stdout.write(
            self.style.SUCCESS(
                f"Completed: {record.samples_done} samples in {seconds:.1f}s -> {record.output_path}"
            )
        )
