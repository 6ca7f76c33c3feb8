"""What the views, admin, import and the extraction modal share: naming, copying, favorites."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from itertools import count
from typing import Any

from django.db import IntegrityError, transaction

from models_app.numbers import whole_number_in

from .models import ExtractionTemplate

_NAME_MAX_LENGTH = ExtractionTemplate._meta.get_field("name").max_length
assert _NAME_MAX_LENGTH is not None  # the name is a CharField with a max_length
NAME_MAX: int = _NAME_MAX_LENGTH
_NUMBERED = re.compile(r"(.*\S) \(([0-9]+)\)")


def _candidates(name: str) -> Iterator[str]:
    """`name`, then the numbers after it: "probe (2)" goes on as "probe (3)", not "probe (2) (2)"."""
    name = name[:NAME_MAX]
    yield name
    base, last = name, 1
    numbered = _NUMBERED.fullmatch(name)
    if numbered and whole_number_in(numbered[2], high=10**9) is not None:
        base, last = numbered[1], int(numbered[2])
    for number in count(max(last + 1, 2)):
        suffix = f" ({number})"
        yield base[: NAME_MAX - len(suffix)] + suffix


def available_name(base: str, owner=None) -> str:
    """`base`, else "base (2)", "base (3)"… (numbered on from a number `base` already ends with):
    the first name no template of those a template of `owner` must not repeat has
    (case-insensitively; Owned.alike_for)."""
    templates = ExtractionTemplate.objects.alike_for(owner)
    return next(name for name in _candidates(base) if not templates.filter(name__iexact=name).exists())


def first_free_name(base: str, taken: set[str]) -> str:
    """available_name against a set of casefolded names already read (an import's, in bulk)."""
    return next(name for name in _candidates(base) if name.casefold() not in taken)


def duplicate(template: ExtractionTemplate, owner=None) -> ExtractionTemplate:
    """A copy named "Copy of X" (then "Copy of X (2)"…, numbered as available_name does), not a
    favorite: a copy is a draft, and `owner`'s (whoever copied it may change their copy)."""
    for _ in range(5):  # two people copying at once may pick the same name; the second retries
        copy = ExtractionTemplate.objects.get(pk=template.pk)
        copy.pk = None
        copy._state.adding = True
        copy.name = available_name(f"Copy of {template.name}", owner)
        copy.is_favorite = False
        copy.owner = owner
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


# The extraction form's field -> the template's field.
FROM_EXTRACTION = {
    "layers": "layer_indices",
    "hooks": "hook_types",
    "batch_size": "batch_size",
    "micro_batch_size": "micro_batch_size",
    "max_samples": "max_samples",
    "context_length": "context_length",
    "top_k": "top_k_examples",
    "context_prefix_tokens": "context_prefix_tokens",
    "context_suffix_tokens": "context_suffix_tokens",
    "dtype": "dtype",
}


def form_from_extraction(post, name: str):
    """A TemplateForm for the extraction modal's posted settings under `name`. Empty optional
    fields take the template's defaults, as they do in the extraction form."""
    from .forms import TemplateForm

    data: dict[str, Any] = {"name": name}
    for field, template_field in FROM_EXTRACTION.items():
        values = post.getlist(field)
        if field in ("layers", "hooks"):
            data[template_field] = values
        elif values and values[-1] != "":
            data[template_field] = values[-1]
        elif field in ("micro_batch_size", "max_samples"):
            data[template_field] = None  # empty means "the batch size" / "the whole dataset"
    return TemplateForm(data)


def extraction_initial(template: ExtractionTemplate, num_layers: int) -> tuple[dict, list[int]]:
    """The extraction form's initial values from a template for a model with `num_layers`, and
    the template's layers that model lacks (to be reported, not dropped silently)."""
    initial = template.extraction_settings()
    initial["layers"] = [i for i in template.layer_indices if i < num_layers]
    return initial, [i for i in template.layer_indices if i >= num_layers]
