"""The streaming extraction engine: text batches -> forward hooks -> .npy memmaps on disk, with
per-(layer, hook) statistics and max-activating examples. Django-free; usable as a library:

    loaded = loading.load(model_dir, "q4")
    extract(loaded.model, loaded.tokenizer, texts, ExtractionSettings(layers=[0, 5], hooks=["residual"]),
            Path("out"))

Semantics (see DESIGN): residual = output of decoder block i; mlp / attention = the output of
block i's MLP / attention module before it is added back. Rows are samples, columns token
positions (right-padded to the context length); padding is zero and in no statistic.
"""
from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .hooks import HOOK_TYPES, HookPoints, find_hook_points
from .stats import RunningStats, RunningTopK

DTYPES = {"float16": (torch.float16, np.float16), "float32": (torch.float32, np.float32)}
PARTIAL = ".partial"


class ExtractionCancelled(Exception):
    pass


class ExtractionError(Exception):
    """A request the engine refuses before doing any work, explained for the user."""


class _StopForward(Exception):
    """Raised by a hook after the deepest requested layer: the rest of the model is not run."""


@dataclass
class ExtractionSettings:
    layers: list[int]
    hooks: list[str]
    batch_size: int = 8
    max_samples: int | None = None
    context_length: int = 128
    top_k: int = 10
    dtype: str = "float16"
    # Samples per forward pass (memory); batch_size is the step of tokenizing and progress.
    # None: the batch size.
    micro_batch_size: int | None = None

    @property
    def forward_batch_size(self) -> int:
        return min(self.batch_size, self.micro_batch_size or self.batch_size)


@dataclass
class ExtractionProgress:
    samples_done: int
    samples_total: int
    tokens_per_second: float
    eta_seconds: float | None
    bytes_written: int
    batch_size: int


@dataclass
class _Target:
    key: str
    layer: int
    hook: str
    module_path: str
    stats: RunningStats = field(default_factory=RunningStats)
    topk: RunningTopK | None = None
    captured: torch.Tensor | None = None


def activation_key(layer: int, hook: str) -> str:
    return f"layer_{layer}_{hook}"


def validate(settings: ExtractionSettings, num_layers: int) -> None:
    if not settings.layers:
        raise ExtractionError("Select at least one layer.")
    bad = [layer for layer in settings.layers if not 0 <= layer < num_layers]
    if bad:
        raise ExtractionError(f"Layer {bad[0]} does not exist: this model has layers 0 to {num_layers - 1}.")
    if not settings.hooks or any(h not in HOOK_TYPES for h in settings.hooks):
        raise ExtractionError(f"Hook types must be among {', '.join(HOOK_TYPES)}.")
    if settings.batch_size < 1 or settings.context_length < 1 or settings.top_k < 1:
        raise ExtractionError("Batch size, context length and top-K must be at least 1.")
    if settings.micro_batch_size is not None and settings.micro_batch_size < 1:
        raise ExtractionError("Micro batch size must be at least 1.")
    if settings.dtype not in DTYPES:
        raise ExtractionError(f"Output dtype must be one of {', '.join(DTYPES)}.")


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


@contextmanager
def capturing(model: nn.Module, targets: list[_Target], stop_after: str) -> Iterator[None]:
    """Forward hooks that keep each target module's output, plus one that ends the forward pass
    after the deepest requested block. Hooks are global state: always removed on the way out."""
    handles = []
    try:
        for target in targets:
            module = model.get_submodule(target.module_path)

            def keep(_module, _inputs, output, target=target):
                target.captured = _first(output)

            handles.append(module.register_forward_hook(keep))

        def stop(_module, _inputs, _output):
            raise _StopForward()

        handles.append(model.get_submodule(stop_after).register_forward_hook(stop))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _hidden_size(model: nn.Module) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(config.hidden_size)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _prepare_tokenizer(tokenizer: Any) -> Any:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    return tokenizer


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


class _Outputs:
    """Preallocated .npy files (readers can np.load(..., mmap_mode="r") them), written under a
    temporary name and renamed only when complete.

    Batches are written with plain positioned writes rather than through a writable memmap:
    pages dirtied through a mapping stay counted in the process's resident memory, which would
    then grow with the number of samples; written through the file, they are only page cache."""

    def __init__(self, folder: Path, targets: list[_Target], samples: int, context: int,
                 hidden: int, dtype: Any):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.files: dict[str, tuple[Any, int, int]] = {}  # name -> (handle, data offset, row bytes)
        for target in targets:
            self._create(f"{target.key}.npy", dtype, (samples, context, hidden))
        self._create("tokens.npy", np.int32, (samples, context))
        self._create("attention_mask.npy", np.int8, (samples, context))
        self.bytes_written = 0

    def _create(self, name: str, dtype: Any, shape: tuple[int, ...]) -> None:
        path = self.folder / (name + PARTIAL)
        header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        offset, row_bytes = header.offset, header[0].nbytes if shape[0] else 0
        del header  # the file now has its header and full (sparse, zero) size
        self.files[name] = (open(path, "r+b"), offset, row_bytes)

    def write(self, name: str, start: int, values: np.ndarray) -> None:
        handle, offset, row_bytes = self.files[name]
        handle.seek(offset + start * row_bytes)
        handle.write(np.ascontiguousarray(values).tobytes())
        self.bytes_written += values.nbytes

    def finish(self) -> dict[str, int]:
        sizes = {}
        for name, (handle, _offset, _row) in self.files.items():
            handle.close()
            os.replace(self.folder / (name + PARTIAL), self.folder / name)
            sizes[name] = (self.folder / name).stat().st_size
        self.files.clear()
        return sizes

    def discard(self) -> None:
        for handle, _offset, _row in self.files.values():
            handle.close()
        self.files.clear()
        for partial in self.folder.glob("*" + PARTIAL):
            partial.unlink()


def extract(model: nn.Module, tokenizer: Any, texts: Sequence[str], settings: ExtractionSettings,
            output_dir: Path, *, on_progress: Callable[[ExtractionProgress], None] = lambda p: None,
            should_cancel: Callable[[], bool] = lambda: False, metadata: dict | None = None,
            forward: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Run the extraction and return the metadata written to output_dir/metadata.json.
    `forward` replaces model(...) (tests use it to inject an out-of-memory error)."""
    points: HookPoints = find_hook_points(model)
    validate(settings, points.num_layers)
    output_dir = Path(output_dir)
    total = len(texts) if settings.max_samples is None else min(len(texts), settings.max_samples)
    if total < 1:
        raise ExtractionError("The dataset has no samples.")
    device, hidden = _device(model), _hidden_size(model)
    torch_dtype, np_dtype = DTYPES[settings.dtype]
    layers = sorted(set(settings.layers))
    hooks = [h for h in HOOK_TYPES if h in settings.hooks]
    targets = [_Target(activation_key(layer, hook), layer, hook, points.path(hook, layer),
                       topk=RunningTopK(settings.top_k, hidden, device))
               for layer in layers for hook in hooks]
    tokenizer = _prepare_tokenizer(tokenizer)
    outputs = _Outputs(output_dir, targets, total, settings.context_length, hidden, np_dtype)
    run = forward or (lambda **inputs: model(**inputs))
    started, started_wall = time.perf_counter(), time.time()
    oom_events: list[dict[str, int]] = []
    real_tokens, done, batch_size = 0, 0, settings.forward_batch_size
    try:
        with capturing(model, targets, points.path("residual", layers[-1])), torch.inference_mode():
            while done < total:
                if should_cancel():
                    raise ExtractionCancelled()
                chunk = list(texts[done:min(done + settings.batch_size, total)])
                encoded = tokenizer(chunk, padding="max_length", truncation=True,
                                    max_length=settings.context_length, return_tensors="pt")
                offset = 0
                while offset < len(chunk):
                    rows = slice(offset, offset + batch_size)
                    ids = encoded["input_ids"][rows].to(device)
                    mask = encoded["attention_mask"][rows].to(device)
                    try:
                        try:
                            run(input_ids=ids, attention_mask=mask, use_cache=False)
                        except _StopForward:
                            pass
                    except Exception as exc:
                        if not _is_oom(exc) or batch_size == 1:
                            raise
                        oom_events.append({"at_sample": done + offset, "batch_size": batch_size,
                                           "retried_with": batch_size // 2})
                        batch_size //= 2
                        for target in targets:
                            target.captured = None
                        if torch.cuda.is_available():
                            torch.cuda.empty_cache()
                        continue
                    real_tokens += int(mask.sum().item())
                    _store(targets, outputs, done + offset, ids, mask, torch_dtype)
                    offset += len(ids)
                done += len(chunk)
                elapsed = time.perf_counter() - started
                rate = done / elapsed if elapsed > 0 else 0.0
                on_progress(ExtractionProgress(
                    samples_done=done, samples_total=total,
                    tokens_per_second=real_tokens / elapsed if elapsed > 0 else 0.0,
                    eta_seconds=(total - done) / rate if rate > 0 else None,
                    bytes_written=outputs.bytes_written, batch_size=batch_size))
        sizes = outputs.finish()
    except BaseException:
        outputs.discard()
        raise
    seconds = time.perf_counter() - started
    result = _finite(_metadata(settings, targets, sizes, total, hidden, real_tokens, seconds, started_wall,
                               oom_events, batch_size, points, metadata or {}))
    _save_topk(output_dir, targets)
    _write_json(output_dir / "metadata.json", result)
    return result


def _store(targets: list[_Target], outputs: _Outputs, start: int, ids: torch.Tensor,
           mask: torch.Tensor, dtype: torch.dtype) -> None:
    real = mask.bool()
    for target in targets:
        if target.captured is None:
            raise ExtractionError(f"{target.module_path} produced no output: the model skipped it.")
        acts = torch.where(real.unsqueeze(-1), target.captured, 0).to(dtype)
        target.captured = None
        target.stats.update(acts[real])
        target.topk.update(acts, real, start)
        outputs.write(f"{target.key}.npy", start, acts.cpu().numpy())
    outputs.write("tokens.npy", start, torch.where(real, ids, 0).to(torch.int32).cpu().numpy())
    outputs.write("attention_mask.npy", start, mask.to(torch.int8).cpu().numpy())


def _save_topk(folder: Path, targets: list[_Target]) -> None:
    for target in targets:
        final = folder / f"topk_{target.key}.npz"
        partial = folder / f"topk_{target.key}.npz{PARTIAL}"
        with open(partial, "wb") as handle:
            np.savez(handle, **target.topk.arrays())
        os.replace(partial, final)


def _metadata(settings, targets, sizes, total, hidden, real_tokens, seconds, started_wall,
              oom_events, final_batch_size, points, extra) -> dict[str, Any]:
    statistics = {}
    for t in targets:
        statistics[t.key] = {"layer": t.layer, "hook": t.hook, "module": t.module_path,
                             "shape": [total, settings.context_length, hidden],
                             "file": f"{t.key}.npy", "file_size": sizes[f"{t.key}.npy"],
                             **t.stats.summary()}
    return {
        "complete": True,
        "settings": asdict(settings),
        "samples": total,
        "context_length": settings.context_length,
        "hidden_size": hidden,
        "dtype": settings.dtype,
        "real_tokens": real_tokens,
        "decoder_layers": points.layers_path,
        "statistics": statistics,
        "files": sorted([*sizes, *(f"topk_{t.key}.npz" for t in targets), "metadata.json"]),
        "timings": {"started": started_wall, "seconds": seconds,
                    "samples_per_second": total / seconds if seconds else None,
                    "tokens_per_second": real_tokens / seconds if seconds else None},
        "oom_events": oom_events,
        "final_batch_size": final_batch_size,
        **extra,
    }


def _write_json(path: Path, data: dict) -> None:
    partial = path.with_name(path.name + PARTIAL)
    partial.write_text(json.dumps(data, indent=2, default=_json_default, allow_nan=False))
    os.replace(partial, path)


def _finite(value: Any) -> Any:
    """inf / NaN (a float16 overflow) become None: JSON has no such numbers, and PostgreSQL's
    JSONB refuses them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
