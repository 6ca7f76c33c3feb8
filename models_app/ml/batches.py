"""Batches of real tokens: texts are tokenized a window at a time (truncated to the context,
not padded), sorted by length within the window, and cut into batches padded only to their own
longest sample, so the model computes on real tokens and next to no padding. Each batch carries
its samples' indices, so results go back to their own rows and the files keep the dataset's order.

The next window is tokenized by a background thread while the current one runs through the
model. The window bounds memory (a few thousand samples of token ids) and keeps progress smooth.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

WINDOW = 4096  # samples tokenized and sorted together
JOIN_TIMEOUT = 1.0  # seconds a stopped run waits for the tokenizing thread (cancel stays within 2 s)


@dataclass
class Window:
    start: int  # index of its first sample
    ids: list[list[int]]  # token ids of each sample, truncated to the context
    order: list[int]  # positions in `ids`, longest first


@dataclass
class Batch:
    rows: list[int]  # sample indices (rows of the files)
    lengths: list[int]  # real tokens of each row
    input_ids: torch.Tensor  # [rows, longest], right-padded
    attention_mask: torch.Tensor

    @property
    def tokens(self) -> int:
        return sum(self.lengths)

    def real_tokens(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For every real token: its index in the flattened [rows x longest] batch, its sample
        (row of the files) and its position. Counted in numpy: a torch operation per row would
        cost more than the arithmetic."""
        longest = self.input_ids.shape[1]
        lengths = np.asarray(self.lengths, dtype=np.int64)
        firsts = np.repeat(np.cumsum(lengths) - lengths, lengths)  # each token's row's first token
        positions = np.arange(int(lengths.sum()), dtype=np.int64) - firsts
        rows = np.repeat(np.asarray(self.rows, dtype=np.int64), lengths)
        starts = np.repeat(np.arange(len(lengths), dtype=np.int64) * longest, lengths)
        return torch.from_numpy(starts + positions), torch.from_numpy(rows), torch.from_numpy(positions)


def tokenize_window(tokenizer: Any, texts: Sequence[str], start: int, context: int) -> Window:
    ids = tokenizer(list(texts), truncation=True, max_length=context, padding=False)["input_ids"]
    # Longest first: a batch that does not fit in memory shows up at once, and lengths within
    # each batch are as close as they can be.
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    return Window(start, ids, order)


def pad(window: Window, positions: list[int], pad_id: int) -> Batch:
    """The samples at `positions` of the window's order, padded to the longest of them."""
    picked = [window.order[p] for p in positions]
    lengths = [len(window.ids[i]) for i in picked]
    longest = max(lengths)
    input_ids = np.full((len(picked), longest), pad_id, dtype=np.int64)
    for row, (i, length) in enumerate(zip(picked, lengths, strict=True)):
        input_ids[row, :length] = window.ids[i]
    attention_mask = (np.arange(longest) < np.asarray(lengths)[:, None]).astype(np.int64)
    return Batch(
        [window.start + i for i in picked],
        lengths,
        torch.from_numpy(input_ids),
        torch.from_numpy(attention_mask),
    )


def windows(
    tokenizer: Any,
    texts: Sequence[str],
    total: int,
    context: int,
    should_stop: Callable[[], bool],
    size: int | None = None,
    first: int = 0,
) -> Iterator[Window]:
    """The windows over texts[first:total] (`size` samples each, WINDOW by default; `first` is
    where one starts), each tokenized one step ahead in a background thread."""
    size = size or WINDOW
    ahead: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def hand_over(item) -> bool:
        """Queue `item` unless the consumer has stopped; False once it has."""
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for start in range(first, total, size):
                if not hand_over(
                    tokenize_window(tokenizer, texts[start : min(start + size, total)], start, context)
                ):
                    return
            hand_over(done)
        except BaseException as exc:  # handed to the consumer, raised there
            hand_over(exc)

    thread = threading.Thread(target=produce, name="tokenize-ahead", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = ahead.get(timeout=0.2)
            except queue.Empty:
                if should_stop():
                    return
                continue
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=JOIN_TIMEOUT)  # it notices within one window's tokenization
