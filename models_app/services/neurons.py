"""The neuron page's figures (models_app.ml.neuron, read from the extraction's arrays) with each
band's examples decoded, and where the same neuron is in the model's other formats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..ml import neuron as neuron_profile
from ..ml import unembedding
from ..models import Comparison, Extraction
from .examples import Example, ExamplesUnavailable, examples_at
from .tokens import model_tokenizer

CONTEXT = 8  # tokens shown on each side of a band example's token


@dataclass
class Band:
    low: float
    high: float
    count: int
    share: float  # of the real tokens
    examples: list[Example]


def neuron_page(record: Extraction, key: str, neuron: int, threshold: float, user) -> dict[str, Any]:
    """The page's context: the figures, the bands (strongest first) with decoded examples, and the
    same neuron's figures in the extractions of other formats that hold its (layer, hook), side by
    side with these (each read from its own arrays, and kept as this one's are)."""
    if not record.is_completed:
        raise ExamplesUnavailable(f"Extraction {record.pk} has not completed.")
    try:
        figures = neuron_profile.profile(record.output_dir, key, neuron, threshold=threshold)
    except neuron_profile.NeuronUnavailable as exc:
        raise ExamplesUnavailable(str(exc)) from None
    peak = max(abs(figures["max"]), abs(figures["min"])) or 1.0
    found = [[(e["value"], e["sample"], e["token"]) for e in band["examples"]] for band in figures["bands"]]
    try:
        decoded = [examples_at(record, key, neuron, chosen, CONTEXT, CONTEXT, peak=peak) for chosen in found]
        unavailable = ""
    except ExamplesUnavailable as exc:  # no tokenizer: the figures still stand
        decoded, unavailable = [[] for _ in found], str(exc)
    bands = [
        Band(band["low"], band["high"], band["count"], band["count"] / figures["tokens"], examples)
        for band, examples in reversed(list(zip(figures["bands"], decoded, strict=True)))
    ]
    others = [
        _beside(other, key, neuron, threshold)
        for other in Comparison.candidates(record, user)
        if key in other.statistics
    ]
    return {
        "figures": figures,
        "bands": bands,
        "examples_unavailable": unavailable,
        "other_formats": others,
        **logit_effects(record, neuron),
    }


@dataclass
class Beside:
    """The same neuron in an extraction of another format: its figures, or why there are none."""

    extraction: Extraction
    figures: dict[str, Any] | None
    unavailable: str = ""


def _beside(other: Extraction, key: str, neuron: int, threshold: float) -> Beside:
    try:
        return Beside(other, neuron_profile.profile(other.output_dir, key, neuron, threshold=threshold))
    except neuron_profile.NeuronUnavailable as exc:
        return Beside(other, None, str(exc))


def logit_effects(record: Extraction, neuron: int) -> dict[str, Any]:
    """{"logits": the tokens the dimension raises and lowers most} or {"logits_unavailable": why}."""
    tokenizer = model_tokenizer(record.model.file_path) if record.model.file_path else None
    if tokenizer is None:
        return {"logits_unavailable": f"{record.model.name} has no tokenizer.json to name the tokens with."}
    try:
        found = unembedding.effects(
            Path(record.model.file_path), neuron, lambda i: tokenizer.decode([i], skip_special_tokens=False)
        )
    except unembedding.UnembeddingUnavailable as exc:
        return {"logits_unavailable": str(exc)}
    return {"logits": found}
