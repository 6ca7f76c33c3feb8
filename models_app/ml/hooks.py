"""Find where a decoder-only model keeps its blocks, and the modules each hook type attaches to.

Found generically from the module tree (the ModuleList holding one entry per decoder layer, and
each block's attention and MLP children), so a family this file has never heard of still works
when it follows the usual shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import UserError
from .vocabulary import HOOK_TYPES

ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")
MLP_NAMES = ("mlp", "feed_forward", "block_sparse_moe", "ffn", "moe")


class UnsupportedArchitecture(UserError):
    pass


@dataclass
class HookPoints:
    layers_path: str
    attention_name: str
    mlp_name: str
    num_layers: int

    def path(self, hook: str, layer: int | str = "{i}") -> str:
        block = f"{self.layers_path}.{layer}"
        if hook == "residual":
            return block
        if hook == "mlp":
            return f"{block}.{self.mlp_name}"
        if hook == "attention":
            return f"{block}.{self.attention_name}"
        raise ValueError(f"unknown hook type {hook!r}")

    def templates(self) -> dict[str, str]:
        return {"decoder_layers": self.layers_path, **{h: self.path(h) for h in HOOK_TYPES}}


def _expected_layers(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None


def _child(block: nn.Module, names: tuple[str, ...], class_words: tuple[str, ...]) -> str | None:
    children = dict(block.named_children())
    for name in names:
        if name in children:
            return name
    for name, module in children.items():
        if any(word in type(module).__name__.lower() for word in class_words):
            return name
    return None


def find_hook_points(model: nn.Module) -> HookPoints:
    expected = _expected_layers(model)
    candidates = [
        (path, module)
        for path, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
        and len(module) > 0
        and "vision" not in path
        and "audio" not in path
    ]
    if expected is not None:
        matching = [c for c in candidates if len(c[1]) == expected]
        candidates = matching or candidates
    if not candidates:
        raise UnsupportedArchitecture(
            f"{type(model).__name__} has no list of decoder layers that miStudio can find."
        )
    # The decoder stack is the shallowest list of the right length (expert lists sit deeper).
    layers_path, layers = min(candidates, key=lambda c: (c[0].count("."), -len(c[1])))
    block = layers[0]
    attention = _child(block, ATTENTION_NAMES, ("attention",))
    mlp = _child(block, MLP_NAMES, ("mlp", "moe", "feedforward"))
    if attention is None or mlp is None:
        missing = "attention" if attention is None else "MLP"
        raise UnsupportedArchitecture(
            f"{type(model).__name__}: the {missing} module of a decoder block "
            f"({type(block).__name__}) could not be identified, so hooks cannot attach."
        )
    return HookPoints(layers_path=layers_path, attention_name=attention, mlp_name=mlp, num_layers=len(layers))


def hook_points_for_folder(folder: Path, trust_remote_code: bool = False) -> HookPoints:
    """Hook points of a downloaded checkpoint, built on the meta device (no weights read).
    Explains why when transformers cannot build the model at all."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        # An explicit False (not None) so transformers never stops to ask on a terminal.
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except (ValueError, KeyError) as exc:
        raise UnsupportedArchitecture(_why_unbuildable(exc, trust_remote_code)) from exc
    return find_hook_points(model)


def _why_unbuildable(exc: BaseException, trust_remote_code: bool) -> str:
    text = str(exc)
    if "trust_remote_code" in text and not trust_remote_code:
        return (
            "This repository ships its own model code: download it again with "
            "“Trust remote code” enabled if you trust its authors."
        )
    if "does not recognize this architecture" in text or "Unrecognized" in text:
        import transformers

        return (
            f"transformers {transformers.__version__} does not know this architecture and the "
            "repository ships no model code for it."
        )
    return f"transformers cannot build this model as a causal LM: {text.splitlines()[0][:200]}"
