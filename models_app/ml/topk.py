"""For every neuron of one (layer, hook), the K highest activations seen so far and the (sample,
token) positions they came from, kept on the activations' device and merged batch by batch."""

from __future__ import annotations

import math
from typing import TypedDict

import numpy as np
import torch

from . import kernels, stats


class TopKArrays(TypedDict):
    """RunningTopK.arrays: each [hidden, K]."""

    values: np.ndarray
    sample_index: np.ndarray
    token_index: np.ndarray


def _largest(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per column of `x` [rows, columns] (k <= rows), its k largest values and their rows, as
    topk(k, dim=0) gives them, for a fraction of its work: the rows are cut into groups; a
    column's k largest values lie in the k groups whose largest values are the column's largest
    (each other group has k values at least its own largest above it), so only those k groups
    are ranked. Groups of about sqrt(rows / k) rows balance ranking the groups and their rows."""
    rows, columns = x.shape
    size = max(1, math.isqrt(rows // max(k, 1)))
    groups = rows // size
    if size == 1 or groups < 2 * k:
        return x.topk(k, dim=0)
    whole = groups * size
    blocks = x[:whole].view(groups, size, columns)
    chosen = blocks.amax(1).topk(k, dim=0).indices  # [k, columns]: which groups
    spread = chosen.unsqueeze(1).expand(k, size, columns)
    candidates = blocks.gather(0, spread).reshape(k * size, columns)
    candidate_rows = (spread * size + torch.arange(size, device=x.device).view(1, size, 1)).reshape(
        k * size, columns
    )
    if whole < rows:  # the last rows, fewer than a group: always candidates
        rest = torch.arange(whole, rows, device=x.device).unsqueeze(1).expand(rows - whole, columns)
        candidates = torch.cat([candidates, x[whole:]])
        candidate_rows = torch.cat([candidate_rows, rest])
    values, index = candidates.topk(k, dim=0)
    return values, candidate_rows.gather(0, index)


def _piece_rows(values: torch.Tensor) -> int | None:
    """On a GPU, the tokens of a batch merged at a time: the float32 copies of a merge must stay
    bounded, as the statistics' are (stats.DEVICE_PIECE_VALUES). None on the CPU: whole batches."""
    if values.device.type == "cpu":
        return None
    return max(1, stats.DEVICE_PIECE_VALUES // max(1, values.shape[1]))


class RunningTopK:
    """For every neuron, the K highest activations seen and their (sample, token) positions."""

    def __init__(self, k: int, hidden: int, device: torch.device | str, *, in_place: bool | None = None):
        """`in_place`: merge batches in place with ml/kernels.py (None: on the CPU). Otherwise
        by ranking each batch whole, the way a GPU merges (tests run it on the CPU too)."""
        self.k = k
        self.in_place = torch.device(device).type == "cpu" if in_place is None else in_place
        # Merged in place, K places from the start, each -inf (nothing kept, as arrays() reads
        # it): the first batch too is merged in place, where ranking it whole would cost more
        # than all the merges of the next few.
        held = k if self.in_place else 0
        self.values = torch.full((held, hidden), -math.inf, device=device)
        self.samples = torch.zeros((held, hidden), dtype=torch.long, device=device)
        self.tokens = torch.zeros((held, hidden), dtype=torch.long, device=device)

    def update(self, values: torch.Tensor, samples: torch.Tensor, tokens: torch.Tensor) -> None:
        """`values`: [tokens, hidden] of real tokens (file dtype); `samples` / `tokens`: [tokens],
        each one's sample (row of the files) and position. Merged in place (the CPU), the values
        that beat a K-th enter where they belong (ml/kernels.py); otherwise the batch's own K
        largest per neuron (`_largest`), then one top-K over those and the K kept (a state
        restored with fewer than K kept is merged this way too, until it holds K)."""
        piece = _piece_rows(values)
        if piece is not None and values.shape[0] > piece:
            for start in range(0, values.shape[0], piece):
                end = start + piece
                self.update(values[start:end], samples[start:end], tokens[start:end])
            return
        if self.in_place and self.values.shape[0] == self.k:
            kept = [t.contiguous() for t in (self.values, self.samples, self.tokens)]
            where = (samples.numpy(), tokens.numpy(), *(t.numpy() for t in kept))
            if values.dtype == torch.float16:  # numba has no float16: read as bits
                bits = np.ascontiguousarray(values.numpy()).view(np.int16)
                floor = kernels.ordered_float16(where[2][-1])
                kernels.merge_top_k_float16(bits, kernels.pattern_values(), floor, *where)
            else:
                kernels.merge_top_k(values.float().contiguous().numpy(), *where)
            self.values, self.samples, self.tokens = kept
            return
        # topk ranks NaN above every number: a NaN (float16 overflow) must not take a slot.
        batch = values.float().nan_to_num(nan=-math.inf, posinf=math.inf, neginf=-math.inf)
        top, rows = _largest(batch, min(self.k, batch.shape[0]))
        kept_values, kept_samples, kept_tokens = self.values, self.samples, self.tokens
        merged = torch.cat([kept_values, top])
        best, index = merged.topk(min(self.k, merged.shape[0]), dim=0)
        held = kept_values.shape[0]
        from_batch = index >= held
        in_batch = rows.gather(0, (index - held).clamp_(min=0))
        if held:
            in_kept = index.clamp(max=held - 1)
            best_samples = torch.where(from_batch, samples[in_batch], kept_samples.gather(0, in_kept))
            best_tokens = torch.where(from_batch, tokens[in_batch], kept_tokens.gather(0, in_kept))
        else:
            best_samples, best_tokens = samples[in_batch], tokens[in_batch]
        self.values, self.samples, self.tokens = best, best_samples, best_tokens

    def state(self) -> dict:
        return {name: getattr(self, name).detach().cpu().clone() for name in ("values", "samples", "tokens")}

    def restore(self, state: dict) -> None:
        device = self.values.device
        self.values, self.samples, self.tokens = (
            state[name].to(device) for name in ("values", "samples", "tokens")
        )

    def arrays(self) -> TopKArrays:
        """values/samples/tokens as [hidden, K] arrays; missing entries (fewer real tokens than
        K, or NaN values) have value -inf and position -1."""
        missing = self.k - self.values.shape[0]
        values, samples, tokens = self.values, self.samples, self.tokens
        if missing > 0:
            hidden = values.shape[1]
            values = torch.cat([values, values.new_full((missing, hidden), -math.inf)])
            samples = torch.cat([samples, samples.new_full((missing, hidden), -1)])
            tokens = torch.cat([tokens, tokens.new_full((missing, hidden), -1)])
        valid = values != -math.inf
        return {
            "values": values.T.cpu().numpy(),
            "sample_index": torch.where(valid, samples, -1).T.cpu().numpy(),
            "token_index": torch.where(valid, tokens, -1).T.cpu().numpy(),
        }
