"""manage.py check_formats MODEL --dataset ID [--samples N] [--context-length N] [--batch-size N]
[--json]: every ready format of MODEL's repository and commit run over the dataset's first samples,
each compared with the most precise on its next-token predictions (KL divergence, top-1 agreement,
perplexity ratio). The check is a record (kept, with its result), run by this process under a
terminal progress bar; a stop signal (Ctrl-C) cancels it."""

from __future__ import annotations

import json

from django.core.management.base import CommandError

from models_app.forms.format_checks import FormatCheckForm
from models_app.jobs.format_check import run_format_check
from models_app.models import FormatCheck, LanguageModel

from ._progress import JobCommand, run_job_with_bar


class Command(JobCommand):
    help = (
        "Run every ready format of a model's repository and commit over a dataset's first samples and"
        " compare each with the most precise: next-token KL divergence (mean, median, 99th percentile),"
        " top-1 agreement and perplexity ratio."
    )
    cancelled_message = "Cancelled: the format check stopped."

    def add_arguments(self, parser) -> None:
        parser.add_argument("model", type=int, help="a ready model's id (any of its formats)")
        parser.add_argument("--dataset", type=int, required=True, help="a ready dataset's id")
        parser.add_argument("--samples", type=int, help="its first samples to run (default 64)")
        parser.add_argument("--context-length", type=int, help="tokens per sample (default 128)")
        parser.add_argument("--batch-size", type=int, help="samples per forward pass (default 8)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options) -> None:
        model = LanguageModel.objects.filter(pk=options["model"]).first()
        if model is None:
            raise CommandError(f"No model with id {options['model']}.")
        data = {"dataset": options["dataset"]}
        for name in ("samples", "context_length", "batch_size"):
            if options[name] is not None:
                data[name] = options[name]
        form = FormatCheckForm(data, model=model)
        if not form.is_valid():
            raise CommandError(" ".join(str(e) for errors in form.errors.values() for e in errors))
        with self.stops.held():  # from here a stop cancels the record's job
            record = form.create(owner=model.owner, queue=False)
            run_job_with_bar(self, run_format_check, record, "show_format_check")
        if record.status != FormatCheck.DONE:
            raise CommandError(record.error_message or f"Format check {record.get_status_display().lower()}.")
        self.stdout.write(json.dumps(record.result, indent=2) if options["json"] else table(record))


def table(record: FormatCheck) -> str:
    result = record.result
    reference = result["reference"]
    lines = [
        f"Format check {record.pk}: {record.model.repo_id}, {result['samples']} samples of"
        f" {result['context_length']} tokens, {result['positions']} next-token positions",
        f"reference {reference['format']} (model {reference['model_id']}):"
        f" perplexity {_number(reference['perplexity'], 3)}",
        f"{'model':>6} {'format':>6} {'KL mean':>9} {'median':>9} {'p99':>9} {'top-1':>7}"
        f" {'PPL':>9} {'PPL ratio':>9}",
    ]
    for f in result["formats"]:
        kl = f["kl"]
        lines.append(
            f"{f['model_id']:>6} {f['format']:>6} {_number(kl['mean'], 5):>9} {_number(kl['median'], 5):>9}"
            f" {_number(kl['p99'], 5):>9} {_number(f['top1_agreement'], 3):>7}"
            f" {_number(f['perplexity'], 3):>9} {_number(f['perplexity_ratio'], 4):>9}"
        )
    return "\n".join(lines)


def _number(value, digits: int) -> str:
    """A figure, or "—" where it was not a finite number (logits that overflowed)."""
    return "—" if value is None else f"{value:.{digits}f}"
