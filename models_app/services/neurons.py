"""The neuron page's figures (models_app.ml.neuron, read from the extraction's arrays) with each
band's examples decoded, and where the same neuron is in the model's other formats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ml import neuron as neuron_profile
from ..models import Comparison, Extraction
from .examples import Example, ExamplesUnavailable, examples_at

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
    extractions in other formats that hold the same (layer, hook)."""
    if not record.is_completed:
        raise ExamplesUnavailable(f"Extraction {record.pk} has not completed.")
    try:
        figures = neuron_profile.profile(record.output_dir, key, neuron, threshold=threshold)
    except neuron_profile.NeuronUnavailable as exc:
        raise ExamplesUnavailable(str(exc)) from None
    peak = max(abs(figures["max"]), abs(figures["min"])) or 1.0
    bands = [
        Band(
            band["low"],
            band["high"],
            band["count"],
            band["count"] / figures["tokens"],
            examples_at(
                record,
                key,
                neuron,
                [(e["value"], e["sample"], e["token"]) for e in band["examples"]],
                CONTEXT,
                CONTEXT,
                peak=peak,
            ),
        )
        for band in reversed(figures["bands"])
    ]
    others = [e for e in Comparison.candidates(record, user) if key in e.statistics]
    return {"figures": figures, "bands": bands, "other_formats": others}
