"""Capturing what the engine extracts: a forward hook on each target module keeps a copy of its
output, and one more ends the forward pass after the deepest requested block, so the layers
above it are never run."""

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


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


@contextmanager
def capturing(
    model: nn.Module, targets: list[Target], stop_after: str, dtype: torch.dtype = torch.float32
) -> Iterator[None]:
    """Forward hooks that keep a copy of each target module's output in `dtype`, plus one that
    ends the forward pass after the deepest requested block. A copy, because a block may add to
    its MLP's output in place before it returns (Falcon's parallel attention does); converting
    to the file's dtype is that copy. Hooks are global state: always removed on the way out."""
    handles = []
    try:
        for target in targets:
            module = model.get_submodule(target.module_path)

            def keep(_module, _inputs, output, target=target):
                target.captured = _first(output).to(dtype, copy=True)

            handles.append(module.register_forward_hook(keep))

        def stop(_module, _inputs, _output):
            raise StopForward()

        handles.append(model.get_submodule(stop_after).register_forward_hook(stop))
        yield
    finally:
        for handle in handles:
            handle.remove()
