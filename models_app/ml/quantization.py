"""Quantization formats, memory estimates and fallback chains (no torch import here)."""

from __future__ import annotations

FP32, FP16, Q8, Q4, Q2 = "fp32", "fp16", "q8", "q4", "q2"
FORMATS: tuple[str, ...] = (FP32, FP16, Q8, Q4, Q2)

LABELS = {FP32: "FP32", FP16: "FP16", Q8: "Q8", Q4: "Q4", Q2: "Q2"}
DESCRIPTIONS = {
    FP32: "FP32 — full precision",
    FP16: "FP16 — half precision",
    Q8: "Q8 — 8-bit (bitsandbytes int8)",
    Q4: "Q4 — 4-bit NF4 (recommended)",
    Q2: "Q2 — 2-bit (HQQ)",
}
DEFAULT_FORMAT = Q4

BYTES_PER_PARAM = {FP32: 4.0, FP16: 2.0, Q8: 1.0, Q4: 0.5, Q2: 0.25}
# Activations, buffers and the unquantized embeddings cost roughly a fifth on top of the weights.
MEMORY_OVERHEAD = 1.2

# Formats written to models/quantized/{id}_{format}/ after the first load, so later jobs skip the
# quantization (HQQ's optimizer takes minutes for a 1B model on a CPU). FP32 and FP16 are just a
# dtype of the downloaded weights, cast at load time.
SERIALIZED_FORMATS = frozenset({Q8, Q4, Q2})

# When a format cannot load on this device (missing kernel or backend) try a more widely
# supported one; when it does not fit in memory try a more compact one.
UNSUPPORTED_FALLBACK = (Q2, Q4, Q8, FP16, FP32)
OOM_FALLBACK = (FP32, FP16, Q8, Q4, Q2)


def estimate_memory_bytes(params: int, fmt: str) -> int:
    return int(params * BYTES_PER_PARAM[fmt] * MEMORY_OVERHEAD)


def memory_table(params: int) -> dict[str, int]:
    return {fmt: estimate_memory_bytes(params, fmt) for fmt in FORMATS}


def next_format(fmt: str, chain: tuple[str, ...]) -> str | None:
    """The format after `fmt` in `chain`, or None at its end."""
    position = chain.index(fmt)
    return chain[position + 1] if position + 1 < len(chain) else None
