"""What the views, admin, import and the extraction modal share: naming, copying, favorites."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import IntegrityError, transaction

from .models import ExtractionTemplate

NAME_MAX = ExtractionTemplate._meta.get_field("name").max_length


def _taken(name: str, reserved: set[str]) -> bool:
    return name.casefold() in reserved or ExtractionTemplate.objects.filter(name__iexact=name).exists()


def available_name(base: str, reserved: Iterable[str] = ()) -> str:
    """`base`, else "base (2)", "base (3)"…: the first name no template has (case-insensitively)
    and that is not in `reserved` (names an import is about to use)."""
    reserved_keys = {n.casefold() for n in reserved}
    base = base[:NAME_MAX]
    if not _taken(base, reserved_keys):
        return base
    number = 2
    while True:
        suffix = f" ({number})"
        candidate = base[:NAME_MAX - len(suffix)] + suffix
        if not _taken(candidate, reserved_keys):
            return candidate
        number += 1


def duplicate(template: ExtractionTemplate) -> ExtractionTemplate:
    """A copy named "Copy of X" (then "Copy of X (2)"…), not a favorite: a copy is a draft."""
    for _ in range(5):  # two people copying at once may pick the same name; the second retries
        copy = ExtractionTemplate.objects.get(pk=template.pk)
        copy.pk = None
        copy._state.adding = True
        copy.name = available_name(f"Copy of {template.name}")
        copy.is_favorite = False
        try:
            with transaction.atomic():
                copy.save()
            return copy
        except IntegrityError:
            continue
    raise IntegrityError(f"Could not find a free name for a copy of {template.name!r}.")


def toggle_favorite(template: ExtractionTemplate) -> ExtractionTemplate:
    # A queryset update leaves updated_at alone: starring is not an edit of the settings.
    template.is_favorite = not template.is_favorite
    ExtractionTemplate.objects.filter(pk=template.pk).update(is_favorite=template.is_favorite)
    return template


def suggest_name(hooks: list[str], layers: list[int], samples: int | None, now: datetime) -> str:
    """e.g. "residual-mlp_layers0-5_1000samples_1432": hooks in the given order, the lowest and
    highest layer, the sample count ("all" for the whole dataset) and now's hour and minute (pass
    timezone.localtime() for the user's clock). Not checked against existing names: see
    available_name."""
    hook_part = "-".join(dict.fromkeys(hooks)) or "nohooks"
    layer_part = f"layers{min(layers)}-{max(layers)}" if layers else "nolayers"
    sample_part = "all" if samples is None else str(samples)
    return f"{hook_part}_{layer_part}_{sample_part}samples_{now:%H%M}"
