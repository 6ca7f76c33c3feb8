"""What an extraction will write and need, before it starts (the modal's live estimate)."""
from __future__ import annotations

from dataclasses import dataclass

BYTES = {"float16": 2, "float32": 4}
DISK_WARNING_SHARE = 0.8  # warn when the output would take most of the free space


@dataclass
class Estimate:
    samples: int
    files: int
    bytes_per_file: int
    total_bytes: int
    free_bytes: int
    batch_memory_bytes: int

    @property
    def refused(self) -> bool:
        return self.total_bytes > self.free_bytes

    @property
    def warning(self) -> bool:
        return not self.refused and self.total_bytes > DISK_WARNING_SHARE * self.free_bytes


def estimate(samples: int, layers: int, hooks: int, context: int, hidden: int, dtype: str,
             batch_size: int, top_k: int, model_memory: int, free_bytes: int) -> Estimate:
    files = layers * hooks
    per_file = samples * context * hidden * BYTES.get(dtype, 2)
    token_files = samples * context * (4 + 1)  # tokens.npy (int32) + attention_mask.npy (int8)
    topk = files * hidden * top_k * (4 + 8 + 8)
    # Each captured activation in float32 for the batch, plus as much again for the forward pass.
    batch = batch_size * context * hidden * 4 * (files + max(hooks, 1) * 4)
    return Estimate(samples=samples, files=files, bytes_per_file=per_file,
                    total_bytes=files * per_file + token_files + topk, free_bytes=free_bytes,
                    batch_memory_bytes=batch + model_memory)
