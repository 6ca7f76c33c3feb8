"""For every neuron of one (layer, hook), the K highest activations seen so far and the (sample,
token) positions they came from, kept on the activations' device and merged batch by batch."""

from __future__ import annotations

import math
from typing import TypedDict

import numpy as np
import torch

from . import stats

# The few-values merge ranks a grid [neurons it changes, K + most values one of them got]; above
# this many times the kept state, the dense merge is cheaper (measured at K=10, 512 neurons).
GRID_LIMIT = 8


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

    def __init__(self, k: int, hidden: int, device: torch.device | str):
        self.k = k
        self.values = torch.full((0, hidden), -math.inf, device=device)
        self.samples = torch.zeros((0, hidden), dtype=torch.long, device=device)
        self.tokens = torch.zeros((0, hidden), dtype=torch.long, device=device)

    def update(self, values: torch.Tensor, samples: torch.Tensor, tokens: torch.Tensor) -> None:
        """`values`: [tokens, hidden] of real tokens (file dtype); `samples` / `tokens`: [tokens],
        each one's sample (row of the files) and position. Once K values are kept, on the CPU,
        usually only the values that beat a K-th are merged (`_merge_few`); otherwise the
        batch's own K largest per neuron (`_largest`), then one top-K over those and the K kept."""
        piece = _piece_rows(values)
        if piece is not None and values.shape[0] > piece:
            for start in range(0, values.shape[0], piece):
                end = start + piece
                self.update(values[start:end], samples[start:end], tokens[start:end])
            return
        neurons = None  # all of them
        if self.values.shape[0] == self.k and values.device.type == "cpu":
            if self._merge_few(values, samples, tokens):
                return
            # Only the neurons whose K-th value some token of the batch beats can change, and
            # after the first few thousand tokens those are few: the merge runs for them alone.
            # (On a GPU, finding them would read a count back every batch: all merge there.)
            # A column's largest value says (NaN included: `not <=` counts it as changing).
            changing = (~(values.amax(0) <= self.values[-1])).nonzero().view(-1)
            if changing.numel() == 0:
                return
            if changing.numel() < values.shape[1]:
                neurons = changing
        batch = values if neurons is None else values.index_select(1, neurons)
        # topk ranks NaN above every number: a NaN (float16 overflow) must not take a slot.
        batch = batch.float().nan_to_num(nan=-math.inf, posinf=math.inf, neginf=-math.inf)
        top, rows = _largest(batch, min(self.k, batch.shape[0]))
        kept = [
            t if neurons is None else t.index_select(1, neurons)
            for t in (self.values, self.samples, self.tokens)
        ]
        merged = torch.cat([kept[0], top])
        best, index = merged.topk(min(self.k, merged.shape[0]), dim=0)
        held = kept[0].shape[0]
        from_batch = index >= held
        in_batch = rows.gather(0, (index - held).clamp_(min=0))
        if held:
            in_kept = index.clamp(max=held - 1)
            best_samples = torch.where(from_batch, samples[in_batch], kept[1].gather(0, in_kept))
            best_tokens = torch.where(from_batch, tokens[in_batch], kept[2].gather(0, in_kept))
        else:
            best_samples, best_tokens = samples[in_batch], tokens[in_batch]
        if neurons is None:
            self.values, self.samples, self.tokens = best, best_samples, best_tokens
        else:
            self.values[:, neurons], self.samples[:, neurons], self.tokens[:, neurons] = (
                best,
                best_samples,
                best_tokens,
            )

    def _merge_few(self, values: torch.Tensor, samples: torch.Tensor, tokens: torch.Tensor) -> bool:
        """The merge on the CPU once K values are kept, when few of the batch's values beat the
        K-th kept value of their neuron (after the first batches, a handful per neuron at most):
        just those values are ranked with the kept ones, in numpy, whose calls on small arrays
        cost a fraction of torch's. False, having changed nothing, when there are too many.
        A value equal to the K-th kept one does not beat it, and the sort keeps the order of
        equal values, the kept ones first: of equal values, the one seen first stays."""
        x = values.float().numpy()  # numpy compares float16 without the CPU's help: 30 times slower
        kept = [t.numpy() for t in (self.values, self.samples, self.tokens)]
        # flatnonzero: numpy's 2-D nonzero takes ten times as long.
        rows, columns = np.divmod(np.flatnonzero(x > kept[0][-1]), x.shape[1])  # NaN beats nothing
        if rows.size == 0:
            return True
        neurons, neuron = np.unique(columns, return_inverse=True)
        arrived = np.bincount(neuron)
        k, depth = self.k, self.k + int(arrived.max())
        if depth * neurons.size > GRID_LIMIT * kept[0].size:
            return False
        # One row per neuron: its K kept values, then the batch's that beat the K-th in the
        # batch's order (columns from K on; -inf pads the rows with fewer).
        by_neuron = np.argsort(neuron, kind="stable")
        arrival = np.empty_like(neuron)
        arrival[by_neuron] = np.arange(neuron.size) - np.repeat(np.cumsum(arrived) - arrived, arrived)
        grids = []
        batch = (x[rows, columns], samples.numpy()[rows], tokens.numpy()[rows])
        for held, new, pad in zip(kept, batch, (-np.inf, -1, -1), strict=True):
            grid = np.full((neurons.size, depth), pad, dtype=held.dtype)
            grid[:, :k] = held[:, neurons].T
            grid[neuron, k + arrival] = new
            grids.append(grid)
        best = np.argsort(-grids[0], axis=1, kind="stable")[:, :k]
        for held, grid in zip(kept, grids, strict=True):
            held[:, neurons] = np.take_along_axis(grid, best, 1).T
        return True

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
