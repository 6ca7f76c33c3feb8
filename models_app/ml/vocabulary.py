"""The studio's words for what it stores: each hook type's value (in records, files, the API and
the terminal) and the one label a person reads for it on every screen.

Plain data with no imports, so forms, templates, the API and the ML code share it without pulling
torch or Django into each other.
"""

from __future__ import annotations

HOOK_LABELS = {"residual": "Residual Stream", "mlp": "MLP Output", "attention": "Attention Output"}
HOOK_TYPES = tuple(HOOK_LABELS)  # also the order hooks are listed and extracted in
HOOK_CHOICES = list(HOOK_LABELS.items())


def hook_label(value: str) -> str:
    """The label of a stored hook type; an unknown value (a found folder's) as it is."""
    return HOOK_LABELS.get(value, value)


def hook_labels(values) -> str:
    """ "Residual Stream, MLP Output" for ["residual", "mlp"], in the order given."""
    return ", ".join(hook_label(v) for v in values or [])


def hooks_described() -> str:
    """The values with their labels, for the API's documentation."""
    return ", ".join(f"{value} ({label})" for value, label in HOOK_CHOICES)
