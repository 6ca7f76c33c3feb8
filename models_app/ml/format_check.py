"""How far a model's narrower formats move its next-token predictions from its most precise one,
on the user's own texts, as llama.cpp's KL-divergence mode reports it. At every real position that
has a next real token, with P the reference format's next-token distribution and Q another's:

- kl: KL(P || Q) = sum_v P(v) (log P(v) - log Q(v)), in nats; its mean, median, 99th percentile
  and maximum over positions;
- top1_agreement: the share of positions where both formats' most likely token is the same;
- perplexity: exp of the mean negative log-likelihood of the text's actual next tokens, and
  perplexity_ratio, another format's over the reference's.

One model is in memory at a time: the reference's log-probabilities of every position are written
to a float32 file in `scratch` (positions x vocabulary), then each other format runs over the same
batches and is compared position by position, reading that file back a batch at a time. The file
is removed at the end. Django-free, like the rest of ml/.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .batches import Batch, pad, tokenize_window
from .errors import Cancelled, UserError


class FormatCheckError(UserError):
    pass


class FormatCheckCancelled(Cancelled):
    pass


@dataclass
class FormatCheckProgress:
    passes_done: int  # formats run to the end, the reference first
    passes_total: int
    samples_done: int  # in the current pass
    samples_total: int


@dataclass
class Format:
    """One format to run: its name, the studio's model id, and how to load it (called once)."""

    name: str
    model_id: int | None
    load: Callable[[], Any]  # -> a loading.LoadedModel (model and tokenizer)


def check(
    formats: Sequence[Format],
    texts: Sequence[str],
    *,
    context_length: int,
    batch_size: int,
    scratch: Path,
    on_progress: Callable[[FormatCheckProgress], None] = lambda p: None,
    should_cancel: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Run formats[0] (the reference) and then each other format over `texts`; the figures as the
    job stores them: {"reference": {...}, "positions": n, "formats": [{...}, ...]}."""
    if len(formats) < 2:
        raise FormatCheckError("A format check needs the reference and at least one other format.")
    if not texts:
        raise FormatCheckError("The dataset has no samples.")
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / "reference_logprobs.f32"
    try:
        run = _Runs(formats, texts, context_length, batch_size, path, on_progress, should_cancel)
        reference = run.reference()
        others = [run.against(i, reference) for i in range(1, len(formats))]
    finally:
        path.unlink(missing_ok=True)
    return {
        "reference": {
            "format": formats[0].name,
            "model_id": formats[0].model_id,
            "perplexity": reference.perplexity,
        },
        "positions": reference.positions,
        "samples": len(texts),
        "context_length": context_length,
        "formats": others,
    }


@dataclass
class _Reference:
    positions: int
    vocabulary: int
    nll: np.ndarray  # per position, float64
    top1: np.ndarray  # per position, the most likely token
    targets: np.ndarray  # per position, the text's next token

    @property
    def perplexity(self) -> float:
        return _perplexity(self.nll)


class _Runs:
    """The passes of one check over the same length-sorted batches."""

    def __init__(self, formats, texts, context_length, batch_size, path, on_progress, should_cancel):
        self.formats, self.texts, self.path = formats, texts, path
        self.context_length, self.batch_size = context_length, batch_size
        self.on_progress, self.should_cancel = on_progress, should_cancel

    def _batches(self, tokenizer: Any) -> list[Batch]:
        window = tokenize_window(tokenizer, self.texts, 0, self.context_length)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        order = range(len(window.order))
        return [
            pad(window, list(order[i : i + self.batch_size]), pad_id)
            for i in range(0, len(order), self.batch_size)
            if any(len(window.ids[window.order[p]]) for p in order[i : i + self.batch_size])
        ]

    def _log_probs(self, index: int) -> Any:
        """Each batch's next-token log-probabilities at its positions with a next real token,
        [positions, vocabulary] float32 on the CPU (what the reference's file holds, so that a
        format compared with itself differs by nothing), and those next tokens; one pass of
        format `index`, which is loaded here and released after."""
        loaded = self.formats[index].load()
        model, tokenizer = loaded.model, loaded.tokenizer
        device = next(model.parameters()).device
        batches = self._batches(tokenizer)
        done = 0
        try:
            for batch in batches:
                if self.should_cancel():
                    raise FormatCheckCancelled()
                with torch.inference_mode():
                    logits = model(
                        input_ids=batch.input_ids.to(device),
                        attention_mask=batch.attention_mask.to(device),
                        use_cache=False,
                    ).logits
                rows, positions = _predicting(batch.lengths)
                picked = logits[rows.to(device), positions.to(device)].float()
                del logits
                targets = batch.input_ids[rows, positions + 1]
                yield torch.log_softmax(picked, dim=-1).cpu(), targets
                done += len(batch.rows)
                self.on_progress(FormatCheckProgress(index, len(self.formats), done, len(self.texts)))
        finally:
            del model, loaded
            gc.collect()  # the next format loads only once this one is gone
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def reference(self) -> _Reference:
        nll, top1, targets_seen, positions, vocabulary = [], [], [], 0, 0
        with open(self.path, "wb") as handle:
            for log_p, targets in self._log_probs(0):
                vocabulary = log_p.shape[1]
                handle.write(log_p.numpy().tobytes())
                nll.append(-log_p.gather(1, targets[:, None]).squeeze(1).double().numpy())
                top1.append(log_p.argmax(1).numpy())
                targets_seen.append(targets.numpy())
                positions += len(log_p)
        if positions == 0:
            raise FormatCheckError("No sample has two tokens: there is no next token to predict.")
        return _Reference(
            positions, vocabulary, np.concatenate(nll), np.concatenate(top1), np.concatenate(targets_seen)
        )

    def against(self, index: int, reference: _Reference) -> dict[str, Any]:
        stored = np.memmap(
            self.path, dtype=np.float32, mode="r", shape=(reference.positions, reference.vocabulary)
        )
        kl, agree, nll, at = [], 0, [], 0
        for log_q, targets in self._log_probs(index):
            if log_q.shape[1] != reference.vocabulary:
                raise FormatCheckError(
                    f"The {self.formats[index].name} model has another vocabulary"
                    f" ({log_q.shape[1]} tokens against {reference.vocabulary})."
                )
            expected = reference.targets[at : at + len(log_q)]
            if len(expected) != len(log_q) or not np.array_equal(expected, targets.numpy()):
                raise FormatCheckError(
                    f"The {self.formats[index].name} model's tokenizer splits the texts otherwise than"
                    f" the reference's: its positions cannot be compared."
                )
            kl.append(_divergence(stored[at : at + len(log_q)], log_q.numpy()))
            agree += int((log_q.argmax(1).numpy() == reference.top1[at : at + len(log_q)]).sum())
            nll.append(-log_q.gather(1, targets[:, None]).squeeze(1).double().numpy())
            at += len(log_q)
        del stored
        if at != reference.positions:
            raise FormatCheckError(
                f"The {self.formats[index].name} model's tokenizer splits the texts otherwise than the"
                " reference's: its positions cannot be compared."
            )
        divergence, perplexity = np.concatenate(kl), _perplexity(np.concatenate(nll))
        return {
            "format": self.formats[index].name,
            "model_id": self.formats[index].model_id,
            "kl": {
                "mean": float(divergence.mean()),
                "median": float(np.median(divergence)),
                "p99": float(np.percentile(divergence, 99)),
                "max": float(divergence.max()),
            },
            "top1_agreement": agree / reference.positions,
            "perplexity": perplexity,
            "perplexity_ratio": perplexity / reference.perplexity,
        }


CHUNK_POSITIONS = 256  # positions whose KL is computed at once in float64 (x vocabulary x 8 bytes)


def _divergence(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """KL(P || Q) per position (row) in float64, from float32 log-probabilities, a chunk of
    positions at a time so that memory stays a few float64 rows of the vocabulary."""
    out = np.empty(len(log_p), dtype=np.float64)
    for start in range(0, len(log_p), CHUNK_POSITIONS):
        p = np.asarray(log_p[start : start + CHUNK_POSITIONS], dtype=np.float64)
        q = np.asarray(log_q[start : start + CHUNK_POSITIONS], dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            # A token the reference gives no chance (log P = -inf) adds nothing, whatever Q says.
            terms = np.where(np.isneginf(p), 0.0, np.exp(p) * (p - q))
        out[start : start + len(p)] = terms.sum(axis=1)
    return out


def _perplexity(nll: np.ndarray) -> float:
    """exp of the mean negative log-likelihood; inf past what a float holds (never an error)."""
    mean = float(nll.mean())
    return math.exp(mean) if mean < 709 else math.inf


def _predicting(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, position) of each position of a batch whose next token is real: positions 0 to
    length - 2 of each row."""
    rows = [row for row, length in enumerate(lengths) for _ in range(max(length - 1, 0))]
    positions = [p for length in lengths for p in range(max(length - 1, 0))]
    return torch.tensor(rows, dtype=torch.long), torch.tensor(positions, dtype=torch.long)
