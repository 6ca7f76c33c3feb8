"""Capturing what the engine extracts: a forward hook on each target module keeps a copy of its
output at the batch's real tokens, and one more ends the forward pass after the deepest
requested block, so the layers above it are never run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .stats import RunningStats
from .topk import RunningTopK


class StopForward(Exception):
    """Raised by a hook after the deepest requested layer: the rest of the model is not run."""


@dataclass
class Target:
    """One (layer, hook): where it is in the model, its running statistics and top-K, and the
    output the hook captured in the current forward pass."""

    key: str
    layer: int
    hook: str
    module_path: str
    topk: RunningTopK
    stats: RunningStats = field(default_factory=RunningStats)
    captured: torch.Tensor | None = None

    def count(self, values: torch.Tensor, samples: torch.Tensor, positions: torch.Tensor) -> None:
        """Adds a batch's real tokens ([tokens, hidden]; each token's sample and position) to the
        statistics and the top-K."""
        self.stats.update(values)
        self.topk.update(values, samples, positions)


@dataclass
class RealTokens:
    """Where the real tokens of the batch being run are: their indices in its flattened
    [rows x longest] positions, set before each forward pass. The hooks keep those rows only,
    packed in that order ([real tokens, hidden]): padding is never copied."""

    index: torch.Tensor | None = None


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


@contextmanager
def capturing(
    model: nn.Module, targets: list[Target], stop_after: str, real: RealTokens, dtype: torch.dtype
) -> Iterator[None]:
    """Forward hooks that keep a copy of each target module's output at the `real` tokens, in
    `dtype`, plus one that ends the forward pass after the deepest requested block. A copy,
    because a block may add to its MLP's output in place before it returns (Falcon's parallel
    attention does); picking the real tokens is that copy. Hooks are global state: always
    removed on the way out."""
    handles = []
    try:
        for target in targets:
            module = model.get_submodule(target.module_path)

            def keep(_module, _inputs, output, target=target):
                assert real.index is not None  # set before every forward pass
                out = _first(output)
                target.captured = out.reshape(-1, out.shape[-1]).index_select(0, real.index).to(dtype)

            handles.append(module.register_forward_hook(keep))

        def stop(_module, _inputs, _output):
            raise StopForward()

        handles.append(model.get_submodule(stop_after).register_forward_hook(stop))
        yield
    finally:
        for handle in handles:
            handle.remove()
