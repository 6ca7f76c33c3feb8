"""The streaming extraction engine: text batches -> forward hooks -> .npy memmaps on disk, with
per-(layer, hook) statistics and max-activating examples. Django-free; usable as a library:

    loaded = loading.load(model_dir, "q4")
    extract(loaded.model, loaded.tokenizer, texts, ExtractionSettings(layers=[0, 5], hooks=["residual"]),
            Path("out"))

Semantics (tested against transformers' own outputs in tests/ml/test_extraction.py): residual =
output of decoder block i; mlp / attention = the output of block i's MLP / attention module
before it is added back. Rows are samples, columns token positions (right-padded to the context
length); padding is zero and in no statistic.

A run checkpoints every few seconds (ml/checkpoint.py); a run started on a folder that holds a
checkpoint of the same settings, model and dataset continues from it, and ends with the same
files as a run never interrupted.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from . import batches, checkpoint, results, team
from .batches import Batch, pad, windows
from .capture import RealTokens, StopForward, Target, capturing
from .errors import Cancelled, UserError
from .hooks import HookPoints, find_hook_points
from .outputs import PARTIAL, HostStaging, NotResumable, Outputs
from .topk import RunningTopK
from .vocabulary import DTYPES, HOOK_TYPES

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Each output dtype (vocabulary.DTYPES) as torch computes it and numpy writes it.
ARRAY_TYPES = {"float16": (torch.float16, np.float16), "float32": (torch.float32, np.float32)}
CHECKPOINT_SECONDS = 5.0  # the most work a kill -9 loses


class ExtractionCancelled(Cancelled):
    pass


class ExtractionError(UserError):
    """A request the engine refuses before doing any work, explained for the user."""


class _ForwardOutOfMemory(Exception):
    """The forward pass itself ran out of memory (the cause): the batch is retried at half."""


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


def _hidden_size(model: PreTrainedModel) -> int:
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


def extract(
    model: PreTrainedModel,
    tokenizer: Any,
    texts: Sequence[str],
    settings: ExtractionSettings,
    output_dir: Path,
    *,
    on_progress: Callable[[ExtractionProgress], None] = lambda p: None,
    should_cancel: Callable[[], bool] = lambda: False,
    metadata: dict | None = None,
    forward: Callable[..., Any] | None = None,
    resume_key: dict[str, Any] | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> dict[str, Any]:
    """Run the extraction and return the metadata written to output_dir/metadata.json.
    `resume_key` names what the settings do not (the model's commit and format, the dataset): a
    checkpoint in output_dir continues only a run with the same. `forward` replaces model(...)
    (tests use it to inject an out-of-memory error)."""
    points: HookPoints = find_hook_points(model)
    validate(settings, points.num_layers)
    output_dir = Path(output_dir)
    total = len(texts) if settings.max_samples is None else min(len(texts), settings.max_samples)
    if total < 1:
        raise ExtractionError("The dataset has no samples.")
    device, hidden = _device(model), _hidden_size(model)
    layers = sorted(set(settings.layers))
    hooks = [h for h in HOOK_TYPES if h in settings.hooks]
    targets = [
        Target(
            activation_key(layer, hook),
            layer,
            hook,
            points.path(hook, layer),
            topk=RunningTopK(settings.top_k, hidden, device),
        )
        for layer in layers
        for hook in hooks
    ]
    key = {
        "layout": [checkpoint.LAYOUT, batches.WINDOW],
        "settings": asdict(settings),
        "samples": total,
        "hidden": hidden,
        "modules": [t.module_path for t in targets],
        "device": str(device),
        **(resume_key or {}),
    }

    def start(saved: checkpoint.Checkpoint | None) -> _Run:
        return _Run(
            model,
            _prepare_tokenizer(tokenizer),
            settings,
            targets,
            total,
            hidden,
            device,
            output_dir,
            forward or (lambda **inputs: model(**inputs)),
            should_cancel,
            _Checkpoints(key, checkpoint_seconds, saved),
        )

    # One run is started, and only one: each holds a writer thread, open files and (on a GPU)
    # pinned buffers that nothing else would release.
    saved, run = checkpoint.load(output_dir, key), None
    if saved is not None:
        try:
            run = start(saved)
        except NotResumable:
            pass
    if run is None:  # whatever an earlier, different run left goes
        _clear_unfinished(output_dir)
        run = start(None)
    try:
        with (
            capturing(model, targets, points.path("residual", layers[-1]), run.real, run.torch_dtype),
            torch.inference_mode(),
        ):
            run.all(texts, on_progress)
        sizes = run.outputs.finish()
    except BaseException:
        # What the last checkpoint counts stays for a Retry; without one, nothing stays.
        run.outputs.keep()
        if checkpoint.progress(output_dir) is None:
            _clear_unfinished(output_dir)
        raise
    result = results.finite(_metadata(settings, targets, sizes, total, hidden, run, points, metadata or {}))
    results.save_topk(output_dir, targets)
    results.write_json(output_dir / "metadata.json", result)
    checkpoint.remove(output_dir)
    return result


def _clear_unfinished(folder: Path) -> None:
    checkpoint.remove(folder)
    for partial in folder.glob("*" + PARTIAL):
        partial.unlink()


@dataclass
class _Checkpoints:
    """When a run checkpoints, and the checkpoint it continues from (None: from the start)."""

    key: dict[str, Any]
    every_seconds: float
    saved: checkpoint.Checkpoint | None


class _Run:
    """One extraction's loop: windows of length-sorted samples -> batches padded to their
    longest -> forward passes (micro batches, halved on out-of-memory) -> statistics and top-K on
    the device, rows staged to the host and written (on the CPU, with the counting, on torch's
    threads; on a GPU by the writer thread, during the next forward pass)."""

    def __init__(
        self,
        model,
        tokenizer,
        settings: ExtractionSettings,
        targets: list[Target],
        total: int,
        hidden: int,
        device: torch.device,
        output_dir: Path,
        forward: Callable[..., Any],
        should_cancel: Callable[[], bool],
        checkpoints: _Checkpoints,
    ):
        self.tokenizer, self.settings, self.targets, self.total = tokenizer, settings, targets, total
        self.output_dir, self.checkpoints = output_dir, checkpoints
        self.device, self.forward, self.should_cancel = device, forward, should_cancel
        self.torch_dtype, np_dtype = ARRAY_TYPES[settings.dtype]
        self.real = RealTokens()  # the hooks' rows, set per forward pass
        context = settings.context_length
        batch = settings.forward_batch_size
        # Staging first: if its pinned memory cannot be had, no writer thread is left behind.
        self.staging = HostStaging(
            device,
            {
                **{t.key: ((batch, context, hidden), self.torch_dtype) for t in targets},
                "tokens": ((batch, context), torch.int32),
                "attention_mask": ((batch, context), torch.int8),
            },
        )
        files: dict[str, tuple[Any, tuple[int, ...]]] = {
            f"{t.key}.npy": (np_dtype, (total, context, hidden)) for t in targets
        }
        files.update(
            {"tokens.npy": (np.int32, (total, context)), "attention_mask.npy": (np.int8, (total, context))}
        )
        saved = checkpoints.saved
        self.outputs = Outputs(output_dir, files, resume=saved is not None)
        self.batch_size = batch  # samples per forward pass; halved on out-of-memory
        self.oom_events: list[dict[str, int]] = []
        self.done = self.real_tokens = 0
        # Where the next batch starts: (first sample of its window, position in its length order).
        self.at = (0, 0)
        self.resumes: list[dict[str, Any]] = []
        self.started, self.started_wall = time.perf_counter(), time.time()
        if saved is not None:
            self._continue_from(saved)
        self.done_at_start, self.real_tokens_at_start = self.done, self.real_tokens
        self.checkpointed_at = self.at if saved is not None else None
        self.last_checkpoint = time.monotonic()

    def _continue_from(self, saved: checkpoint.Checkpoint) -> None:
        for target in self.targets:
            state = saved.targets[target.key]
            target.stats.restore(state["stats"], self.device)
            target.topk.restore(state["topk"])
        self.at = (saved.window_start, saved.position)
        self.done, self.real_tokens = saved.samples_done, saved.real_tokens
        self.outputs.bytes_written = saved.bytes_written
        self.batch_size, self.oom_events = saved.batch_size, list(saved.oom_events)
        self.resumes = [*saved.resumes, {"from_sample": saved.samples_done, "at": self.started_wall}]

    def all(self, texts, on_progress) -> None:
        step = self.settings.batch_size
        first_window, skip = self.at
        for window in windows(
            self.tokenizer,
            texts,
            self.total,
            self.settings.context_length,
            self.should_cancel,
            first=first_window,
        ):
            for first in range(skip if window.start == first_window else 0, len(window.order), step):
                if self.should_cancel():  # between batches: nothing done so far is lost
                    self._checkpoint()
                    raise ExtractionCancelled()
                positions = list(range(first, min(first + step, len(window.order))))
                self._batch(window, positions)
                self.done += len(positions)
                end = first + len(positions)
                self.at = (
                    (window.start + len(window.order), 0) if end == len(window.order) else (window.start, end)
                )
                on_progress(self._progress())
                due = time.monotonic() - self.last_checkpoint >= self.checkpoints.every_seconds
                if due and self.done < self.total:
                    self._checkpoint()
        if self.should_cancel():
            self._checkpoint()
            raise ExtractionCancelled()

    def _checkpoint(self) -> None:
        """Queue a checkpoint of the state after the last batch: it is saved once that batch's
        rows, and all before, are written and synced (ml/outputs.py)."""
        self.last_checkpoint = time.monotonic()
        if self.at == self.checkpointed_at:
            return
        self.checkpointed_at = self.at
        state = checkpoint.Checkpoint(
            key=self.checkpoints.key,
            window_start=self.at[0],
            position=self.at[1],
            samples_done=self.done,
            real_tokens=self.real_tokens,
            bytes_written=0,  # the writer's count once it gets there
            batch_size=self.batch_size,
            oom_events=list(self.oom_events),
            resumes=list(self.resumes),
            targets={t.key: {"stats": t.stats.state(), "topk": t.topk.state()} for t in self.targets},
        )

        def save(bytes_written: int) -> None:
            state.bytes_written = bytes_written
            checkpoint.save(self.output_dir, state, self.total)

        self.outputs.checkpoint(save)

    def _batch(self, window, positions: list[int]) -> None:
        """Forward passes over `positions` of the window, batch_size at a time; a pass that runs
        out of memory is retried at half the size."""
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        offset = 0
        while offset < len(positions):
            if self.should_cancel():  # every forward pass: micro batches or halving make many a step
                raise ExtractionCancelled()
            size = self.batch_size
            span = positions[offset : offset + size]
            chunk = [p for p in span if window.ids[window.order[p]]]  # a sample may have no tokens
            if chunk:
                try:
                    self._forward(pad(window, chunk, pad_id))
                except _ForwardOutOfMemory as exc:
                    if size == 1:  # nothing left to halve: the out-of-memory error itself
                        assert exc.__cause__ is not None  # always raised from that error
                        raise exc.__cause__ from None
                    self.oom_events.append(
                        {"at_sample": self.done + offset, "batch_size": size, "retried_with": size // 2}
                    )
                    self.batch_size = size // 2
                    for target in self.targets:
                        target.captured = None
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    continue
            offset += len(span)

    def _forward(self, batch: Batch) -> None:
        ids = batch.input_ids.to(self.device, non_blocking=True)
        mask = batch.attention_mask.to(self.device, non_blocking=True)
        # Where the real tokens are, from the lengths the host already knows: the hooks keep just
        # those, so statistics and top-K read them and the files get them, while padding
        # positions are never copied, counted or written (and a GPU never waits for a mask).
        real, samples, positions = (t.to(self.device, non_blocking=True) for t in batch.real_tokens())
        self.real.index = real
        try:
            self.forward(input_ids=ids, attention_mask=mask, use_cache=False)
        except StopForward:
            pass
        except Exception as exc:
            # Only the forward pass is retried smaller: past it, statistics have been counted.
            if _is_oom(exc):
                raise _ForwardOutOfMemory() from exc
            raise
        staged = {}
        for target in self.targets:
            if target.captured is None:
                raise ExtractionError(f"{target.module_path} produced no output: the model skipped it.")
            staged[target.key], target.captured = target.captured, None  # [real tokens, hidden], a copy
        tokens = ids.view(-1).index_select(0, real)
        staged["tokens"] = tokens.to(torch.int32)
        staged["attention_mask"] = torch.ones_like(tokens, dtype=torch.int8)
        arrays, wait, release = self.staging.stage(staged)
        names = {t.key: f"{t.key}.npy" for t in self.targets}
        names.update(tokens="tokens.npy", attention_mask="attention_mask.npy")

        def write() -> None:
            wait()
            for key, name in names.items():
                self.outputs.write_rows(name, batch.rows, batch.lengths, arrays[key])

        counts = [functools.partial(t.count, staged[t.key], samples, positions) for t in self.targets]
        if self.device.type == "cpu" and team.available():
            # Written and counted now, on torch's own threads, the writes (the longest job) first:
            # a writer thread would take its turns on the core the counting runs on
            # (ml/team.py). Every job only reads the values.
            team.run([lambda: self.outputs.write_here(write, release), *counts])
        else:
            # A GPU's copies overlap the next forward pass; the writer thread waits for them.
            self.outputs.submit(write, release)
            for count in counts:
                count()
        self.real_tokens += batch.tokens

    def _progress(self) -> ExtractionProgress:
        elapsed = time.perf_counter() - self.started
        rate = (self.done - self.done_at_start) / elapsed if elapsed > 0 else 0.0
        return ExtractionProgress(
            samples_done=self.done,
            samples_total=self.total,
            tokens_per_second=(self.real_tokens - self.real_tokens_at_start) / elapsed
            if elapsed > 0
            else 0.0,
            eta_seconds=(self.total - self.done) / rate if rate > 0 else None,
            bytes_written=self.outputs.bytes_written,
            batch_size=self.batch_size,
        )


def _metadata(settings, targets, sizes, total, hidden, run: _Run, points, extra) -> dict[str, Any]:
    seconds = time.perf_counter() - run.started
    # This run's own work: a resumed run did the samples after its checkpoint.
    samples, tokens = total - run.done_at_start, run.real_tokens - run.real_tokens_at_start
    statistics = {}
    for t in targets:
        logical, on_disk = sizes[f"{t.key}.npy"]
        statistics[t.key] = {
            "layer": t.layer,
            "hook": t.hook,
            "module": t.module_path,
            "shape": [total, settings.context_length, hidden],
            "file": f"{t.key}.npy",
            "file_size": logical,
            "disk_size": on_disk,
            **t.stats.summary(),
        }
    return {
        "complete": True,
        "settings": asdict(settings),
        "samples": total,
        "context_length": settings.context_length,
        "hidden_size": hidden,
        "dtype": settings.dtype,
        "real_tokens": run.real_tokens,
        "padded_tokens": total * settings.context_length,
        "decoder_layers": points.layers_path,
        "statistics": statistics,
        "files": sorted([*sizes, *(f"topk_{t.key}.npz" for t in targets), "metadata.json"]),
        "size": {
            "logical_bytes": sum(size for size, _ in sizes.values()),
            "disk_bytes": sum(disk for _, disk in sizes.values()),
        },
        "timings": {
            "started": run.started_wall,
            "seconds": seconds,
            "samples_per_second": samples / seconds if seconds else None,
            "tokens_per_second": tokens / seconds if seconds else None,
        },
        "oom_events": run.oom_events,
        "final_batch_size": run.batch_size,
        # Where each Retry continued from (the sample its checkpoint had reached).
        "resumed_from_sample": run.resumes[-1]["from_sample"] if run.resumes else None,
        "resumes": run.resumes,
        **extra,
    }
