"""manage.py compare_extractions BASE OTHER [OTHER ...] [--json]: completed extractions of one
model in several formats compared on their shared real tokens, BASE as the reference. The
comparison is a record (kept, with its result), run by this process under a terminal progress
bar; a stop signal (Ctrl-C) cancels it."""

from __future__ import annotations

import json

from django.core.management.base import CommandError
from django.utils.datastructures import MultiValueDict

from models_app.forms.comparisons import ComparisonForm
from models_app.jobs.comparison import run_comparison
from models_app.models import Comparison, Extraction

from ._progress import JobCommand, run_job_with_bar


class Command(JobCommand):
    help = (
        "Compare completed extractions of one model (the same repository, commit, dataset, samples"
        " and context length) on the real tokens they share, per shared (layer, hook): mean cosine,"
        " relative error, SQNR in dB, top-10-neuron overlap, and the least correlated neurons."
    )
    cancelled_message = "Cancelled: the comparison stopped."

    def add_arguments(self, parser) -> None:
        parser.add_argument("base", type=int, help="the reference extraction's id")
        parser.add_argument(
            "others", type=int, nargs="+", metavar="other", help="extractions to compare with it"
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **options) -> None:
        base = Extraction.objects.filter(pk=options["base"]).first()
        if base is None:
            raise CommandError(f"No extraction with id {options['base']}.")
        form = ComparisonForm(MultiValueDict({"others": [str(pk) for pk in options["others"]]}), base=base)
        if not form.is_valid():
            raise CommandError(" ".join(str(e) for errors in form.errors.values() for e in errors))
        with self.stops.held():  # from here a stop cancels the record's job
            record = form.create(owner=base.owner, queue=False)
            run_job_with_bar(self, run_comparison, record, "show_comparison")
        if record.status != Comparison.DONE:
            raise CommandError(record.error_message or f"Comparison {record.get_status_display().lower()}.")
        if options["json"]:
            self.stdout.write(json.dumps(record.result, indent=2))
            return
        self.stdout.write(_table(record))


def _number(value, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _table(record: Comparison) -> str:
    lines = [
        f"Comparison {record.pk}: extraction {record.base_id} against {', '.join(map(str, record.other_ids))}"
    ]
    lines.append(
        f"{'other':>6} {'format':>6} {'layer':>5} {'hook':<9} {'cosine':>8} {'rel.err':>8}"
        f" {'SQNR dB':>8} {'top-10':>7}"
    )
    for other in record.result["others"]:
        for h in other["hooks"]:
            sqnr = "equal" if h["equal"] else _number(h["sqnr_db"], 1)
            lines.append(
                f"{other['id']:>6} {other['format'] or '?':>6} {h['layer']:>5} {h['hook']:<9}"
                f" {_number(h['cosine']):>8} {_number(h['relative_error']):>8} {sqnr:>8}"
                f" {_number(h['top_neuron_overlap'], 3):>7}"
            )
    return "\n".join(lines)
