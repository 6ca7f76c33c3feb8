"""Load a downloaded model in a chosen format, falling back when the format cannot be used.

FP32 / FP16 are dtypes of the downloaded weights; Q8 and Q4 are bitsandbytes int8 and NF4 (with
double quantization); Q2 replaces every decoder linear layer with HQQ's 2-bit HQQLinear (group
size 64), because bitsandbytes has no 2-bit mode.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import quantization as q
from .errors import Cancelled, UserError

if TYPE_CHECKING:
    from transformers import PreTrainedModel
    from transformers.pytorch_utils import Conv1D

HQQ_STATE = "hqq_layers.safetensors"
HQQ_META = "hqq.json"


class FormatUnavailable(UserError):
    """The format's backend cannot run on this device."""


class LoadError(UserError):
    """A model that cannot be loaded at all, explained for the user."""


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    requested_format: str
    effective_format: str
    fallback_reason: str
    footprint_bytes: int
    device: str


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (FormatUnavailable, ImportError, NotImplementedError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, ValueError)) and any(
        word in text for word in ("bitsandbytes", "hqq", "not supported", "no gpu", "backend")
    )


def _bnb_config(fmt: str, device: str) -> Any:
    from transformers import BitsAndBytesConfig

    if fmt == q.Q8:
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.float16 if device == "cuda" else torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


def _conv1d_to_linear(module: Conv1D) -> nn.Linear:
    """GPT-2 style Conv1D stores the transposed weight of an equivalent Linear."""
    n_in, n_out = module.weight.shape
    linear = nn.Linear(
        n_in, n_out, bias=module.bias is not None, dtype=module.weight.dtype, device=module.weight.device
    )
    with torch.no_grad():
        linear.weight.copy_(module.weight.T)
        if module.bias is not None:
            linear.bias.copy_(module.bias)
    return linear


def _hqq_config(nbits: int = 2, group_size: int = 64) -> Any:
    try:
        from hqq.core.quantize import BaseQuantizeConfig
    except ImportError as exc:
        raise FormatUnavailable(f"hqq is not installed ({exc})") from exc
    return BaseQuantizeConfig(nbits=nbits, group_size=group_size)


class LoadCancelled(Cancelled):
    pass


def quantize_hqq_2bit(
    model: PreTrainedModel,
    device: str,
    group_size: int = 64,
    should_cancel: Callable[[], bool] = lambda: False,
) -> int:
    """Swap the decoder's linear layers for 2-bit HQQLinear in place; returns how many. HQQ on a
    CPU takes minutes for a 1B model, so cancellation is checked before each layer."""
    config = _hqq_config(2, group_size)
    from hqq.core.quantize import HQQLinear
    from transformers.pytorch_utils import Conv1D

    output = model.get_output_embeddings()
    swapped = 0

    def visit(parent: nn.Module) -> None:
        nonlocal swapped
        for name, child in list(parent.named_children()):
            if child is output:
                continue
            if isinstance(child, Conv1D):
                child = _conv1d_to_linear(child)
            if isinstance(child, nn.Linear):
                if child.weight.numel() % group_size:
                    continue
                if should_cancel():
                    raise LoadCancelled()
                dtype = child.weight.dtype
                setattr(
                    parent,
                    name,
                    HQQLinear(child, quant_config=config, compute_dtype=dtype, device=device, del_orig=True),
                )
                swapped += 1
            else:
                visit(child)

    visit(model)
    if swapped == 0:
        raise FormatUnavailable("no linear layer of this model can be quantized to 2 bits")
    return swapped


def _from_pretrained(
    source: Path,
    fmt: str,
    device: str,
    trust_remote_code: bool,
    quantize: bool = True,
    should_cancel: Callable[[], bool] = lambda: False,
) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if fmt == q.FP32:
        kwargs["dtype"] = torch.float32
    elif fmt in (q.FP16, q.Q2):
        kwargs["dtype"] = torch.float16
    elif fmt in (q.Q8, q.Q4):
        if device == "mps":
            raise FormatUnavailable("bitsandbytes does not run on Apple MPS")
        kwargs.update(
            dtype=torch.float16, quantization_config=_bnb_config(fmt, device), device_map={"": device}
        )
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if fmt in (q.FP32, q.FP16, q.Q2):
        # transformers decorates PreTrainedModel.to with functools.wraps, which mypy binds wrongly.
        model.to(device)  # type: ignore[arg-type]
    if fmt == q.Q2 and quantize:
        quantize_hqq_2bit(model, device, should_cancel=should_cancel)
    if fmt in (q.Q8, q.Q4) and quantized_layer_count(model) == 0:
        # transformers only swaps exact nn.Linear modules for bitsandbytes ones; a family with its
        # own Linear subclass (falcon) would silently stay FP16 while claiming to be quantized.
        raise FormatUnavailable(
            f"bitsandbytes found no linear layer it can quantize in {type(model).__name__}"
        )
    model.eval()
    return model


def quantized_layer_count(model: nn.Module) -> int:
    """How many modules hold quantized weights (bitsandbytes or HQQ)."""
    names = {"Linear8bitLt", "Linear4bit", "HQQLinear"}
    return sum(type(m).__name__ in names for m in model.modules())


def _is_quantized_copy(path: Path | None) -> bool:
    config = Path(path) / "config.json" if path else None
    return bool(config and config.exists() and "quantization_config" in json.loads(config.read_text()))


def save_hqq_layers(model: nn.Module, folder: Path) -> None:
    """HQQ layers' packed weights and metadata, in safetensors; the rest of the model is the
    downloaded FP16 checkpoint, so only the quantized layers are stored."""
    from hqq.core.quantize import HQQLinear
    from safetensors.torch import save_file

    names = [name for name, module in model.named_modules() if isinstance(module, HQQLinear)]
    state = {}
    for name in names:
        for key, value in model.get_submodule(name).state_dict().items():
            state[f"{name}.{key}"] = value.contiguous()
    first = model.get_submodule(names[0])
    assert isinstance(first, HQQLinear)  # `names` holds only HQQLinear modules
    save_file(state, Path(folder) / HQQ_STATE)
    meta = {
        "method": "hqq",
        "nbits": int(first.meta["nbits"]),
        "group_size": int(first.meta["group_size"]),
        "modules": names,
    }
    (Path(folder) / HQQ_META).write_text(json.dumps(meta, indent=1))


def _load_hqq_copy(model_dir: Path, quantized_dir: Path, device: str, trust_remote_code: bool) -> Any:
    from hqq.core.quantize import HQQLinear
    from safetensors.torch import load_file

    meta = json.loads((quantized_dir / HQQ_META).read_text())
    config = _hqq_config(meta["nbits"], meta["group_size"])
    model = _from_pretrained(model_dir, q.FP16, device, trust_remote_code, quantize=False)
    state = load_file(quantized_dir / HQQ_STATE, device=device)
    for name in meta["modules"]:
        parent, _, child = name.rpartition(".")
        layer = HQQLinear(
            None, quant_config=config, compute_dtype=torch.float16, device=device, initialize=False
        )
        prefix = name + "."
        layer.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        setattr(model.get_submodule(parent) if parent else model, child, layer)
    return model.eval()


def load_exact(
    model_dir: Path,
    fmt: str,
    device: str,
    trust_remote_code: bool = False,
    quantized_dir: Path | None = None,
    should_cancel: Callable[[], bool] = lambda: False,
) -> Any:
    """Load in exactly `fmt` (no fallback); from the stored quantized copy when there is one."""
    if fmt == q.Q2 and quantized_dir and (Path(quantized_dir) / HQQ_META).exists():
        return _load_hqq_copy(Path(model_dir), Path(quantized_dir), device, trust_remote_code)
    if fmt in q.SERIALIZED_FORMATS and _is_quantized_copy(quantized_dir):
        from transformers import AutoModelForCausalLM

        assert quantized_dir is not None  # _is_quantized_copy read its config.json

        model = AutoModelForCausalLM.from_pretrained(
            quantized_dir, device_map={"": device}, trust_remote_code=trust_remote_code
        )
        return model.eval()
    return _from_pretrained(Path(model_dir), fmt, device, trust_remote_code, should_cancel=should_cancel)


Loader = Callable[[Path, str, str, bool, "Path | None"], Any]


def load(
    model_dir: Path,
    fmt: str,
    device: str | None = None,
    trust_remote_code: bool = False,
    quantized_dir: Path | None = None,
    loader: Loader = load_exact,
    on_attempt: Callable[[str], object] = lambda fmt: None,  # what it returns is ignored
    should_cancel: Callable[[], bool] = lambda: False,
) -> LoadedModel:
    """Load `fmt`, walking the fallback chains when the format cannot run here or does not fit."""
    from transformers import AutoTokenizer

    device = device or default_device()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    reasons: list[tuple[str, str]] = []  # (format label, why it could not be used)
    tried: set[str] = set()
    current: str | None = fmt
    while current is not None and current not in tried:
        tried.add(current)
        on_attempt(current)
        if should_cancel():
            raise LoadCancelled()
        try:
            if loader is load_exact:
                model = load_exact(
                    Path(model_dir),
                    current,
                    device,
                    trust_remote_code,
                    quantized_dir,
                    should_cancel=should_cancel,
                )
            else:
                model = loader(Path(model_dir), current, device, trust_remote_code, quantized_dir)
        except Exception as exc:
            if _is_oom(exc):
                reasons.append((q.LABELS[current], f"out of memory on {device}"))
                _free_memory()
                current = q.next_format(current, q.OOM_FALLBACK)
            elif _is_unavailable(exc):
                reasons.append((q.LABELS[current], f"not available on {device}: {_short(exc)}"))
                current = q.next_format(current, q.UNSUPPORTED_FALLBACK)
            else:
                raise
            continue
        return LoadedModel(
            model=model,
            tokenizer=tokenizer,
            requested_format=fmt,
            effective_format=current,
            fallback_reason=_explain(reasons),
            footprint_bytes=int(model.get_memory_footprint()),
            device=device,
        )
    raise LoadError("No format could be loaded: " + _explain(reasons))


def _explain(reasons: list[tuple[str, str]]) -> str:
    """'Q4, Q8: not available on cpu: <why>' — formats that failed for the same reason together."""
    grouped: dict[str, list[str]] = {}
    for label, why in reasons:
        grouped.setdefault(why, []).append(label)
    return "; ".join(f"{', '.join(labels)} {why}" for why, labels in grouped.items())


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _free_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def save_quantized(loaded: LoadedModel, target: Path) -> Path | None:
    """Write a Q8/Q4/Q2 model to `target` (under a temporary name, renamed when complete) so
    later jobs load it directly. FP32/FP16 return None: the download is their copy."""
    if loaded.effective_format not in q.SERIALIZED_FORMATS:
        return None
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        if loaded.effective_format == q.Q2:
            partial.mkdir(parents=True)
            save_hqq_layers(loaded.model, partial)
        else:
            loaded.model.save_pretrained(partial)
        loaded.tokenizer.save_pretrained(partial)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def count_parameters_on_disk(model_dir: Path) -> int:
    """Exact parameter count of the unquantized checkpoint, from tensor shapes on disk (so a
    4-bit model, whose packed weights have half the elements, still reports the real count)."""
    from safetensors import safe_open

    model_dir = Path(model_dir)
    total = 0
    shards = sorted(model_dir.glob("*.safetensors"))
    for shard in shards:
        with safe_open(shard, framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (a safetensors handle is not a dict)
                total += _numel(handle.get_slice(name).get_shape())
    if shards:
        return total
    for shard in sorted(model_dir.glob("pytorch_model*.bin")):
        state = torch.load(shard, map_location="meta", weights_only=True, mmap=True)
        total += sum(t.numel() for t in state.values())
    return total


def _numel(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count
