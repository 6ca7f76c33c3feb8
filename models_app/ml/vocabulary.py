"""The studio's words for an extraction: each hook type's value (in records, files, the API and
the terminal) and the one label a person reads for it on every screen; the output dtypes; the
limits the forms, the templates and the engine share; and what the running top-K holds.

Plain data with no imports, so forms, templates, the API and the ML code share it without pulling
torch or Django into each other.
"""

from __future__ import annotations

HOOK_LABELS = {"residual": "Residual Stream", "mlp": "MLP Output", "attention": "Attention Output"}
HOOK_TYPES = tuple(HOOK_LABELS)  # also the order hooks are listed and extracted in
HOOK_CHOICES = list(HOOK_LABELS.items())

DTYPE_BYTES = {"float16": 2, "float32": 4}  # an output file's bytes per value
DTYPES = tuple(DTYPE_BYTES)
DTYPE_CHOICES = [(dtype, dtype) for dtype in DTYPES]

MAX_BATCH = 512  # samples per batch, and per forward pass
MAX_CONTEXT = 32_768  # tokens per sample when the model's config names no maximum
MAX_SAMPLES = 2**31 - 1  # the largest the record's column holds on every database
MAX_TOP_K = 1000
MAX_TOPK_MEMORY = 2 * 2**30  # bytes the running top-K of one extraction may hold on the device
MAX_CONTEXT_TOKENS = 500  # tokens shown on one side of a top example's peak...
CONTEXT_TOKENS = 25  # ...and by default

# Per kept entry: the value (float32), and its sample and token positions (int64).
TOPK_ENTRY_BYTES = 4 + 8 + 8


def topk_memory_bytes(outputs: int, hidden: int, top_k: int) -> int:
    """What the running top-K of `outputs` (layer, hook) pairs of `hidden` neurons holds."""
    return outputs * hidden * top_k * TOPK_ENTRY_BYTES


def hook_label(value: str) -> str:
    """The label of a stored hook type; an unknown value (a found folder's) as it is."""
    return HOOK_LABELS.get(value, value)


def hook_labels(values) -> str:
    """ "Residual Stream, MLP Output" for ["residual", "mlp"], in the order given."""
    return ", ".join(hook_label(v) for v in values or [])


def hooks_described() -> str:
    """The values with their labels, for the API's documentation."""
    return ", ".join(f"{value} ({label})" for value, label in HOOK_CHOICES)
