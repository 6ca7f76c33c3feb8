"""What an extraction will write and need, before it starts (the modal's live estimate).

Padding is never written (see ml/outputs.py), so the disk an extraction takes follows the real
tokens of its samples, not samples x context. The share of real tokens comes from, in order:
a completed extraction of the same model, dataset and context (measured); the model's tokenizer
over a sample of the dataset (sampled); or, without a tokenizer.json, the full context (assumed).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS

from ..ml import hub
from ..ml import quantization as quant
from ..ml.vocabulary import DTYPE_BYTES, topk_memory_bytes

DISK_WARNING_SHARE = 0.8  # warn when the output would take most of the free space
SAMPLE_TEXTS = 256  # texts tokenized for the estimate (all of them in a smaller dataset)...
SAMPLE_CHARS = 1 << 22  # ...and characters read for it in all, however long the samples are
CHARS_PER_TOKEN = 8  # read this many per position of context: enough to fill it in most texts


@dataclass
class Estimate:
    samples: int
    files: int
    bytes_per_file: int  # logical: samples x context x hidden
    total_bytes: int  # logical size of everything
    disk_bytes: int  # what the disk must hold: real tokens only
    real_share: float  # real tokens / (samples x context)
    share_source: str  # measured / sampled / assumed
    free_bytes: int
    batch_memory_bytes: int

    @property
    def refused(self) -> bool:
        return self.disk_bytes > self.free_bytes

    @property
    def warning(self) -> bool:
        return not self.refused and self.disk_bytes > DISK_WARNING_SHARE * self.free_bytes


def estimate(
    samples: int,
    layers: int,
    hooks: int,
    context: int,
    hidden: int,
    dtype: str,
    batch_size: int,
    top_k: int,
    model_memory: int,
    free_bytes: int,
    real_share: float = 1.0,
    share_source: str = "assumed",
) -> Estimate:
    files = layers * hooks
    per_file = samples * context * hidden * DTYPE_BYTES.get(dtype, 2)
    token_files = samples * context * (4 + 1)  # tokens.npy (int32) + attention_mask.npy (int8)
    topk = topk_memory_bytes(files, hidden, top_k)
    # Each captured activation in float32 for the batch, plus as much again for the forward pass.
    batch = batch_size * context * hidden * 4 * (files + max(hooks, 1) * 4)
    return Estimate(
        samples=samples,
        files=files,
        bytes_per_file=per_file,
        total_bytes=files * per_file + token_files + topk,
        disk_bytes=int((files * per_file + token_files) * real_share) + topk,
        real_share=real_share,
        share_source=share_source,
        free_bytes=free_bytes,
        batch_memory_bytes=batch + model_memory + topk,
    )  # the top-K stays on the device


def real_token_share(model, dataset, context: int) -> tuple[float, str]:
    """(share of positions that hold real tokens, where the figure comes from)."""
    from ..models import Extraction

    done = (
        Extraction.objects.filter(model=model, dataset=dataset, context_length=context, status="completed")
        .order_by("-completed_at")
        .values_list("metadata__real_tokens", "metadata__padded_tokens")
        .first()
    )
    if done and done[1]:  # the two counts only, not the whole metadata (statistics, histograms)
        return done[0] / done[1], "measured"
    if not model.file_path or not dataset.file_path:
        return 1.0, "assumed"
    share = _sampled_share(model.file_path, dataset.file_path, dataset.num_samples, context)
    return (share, "sampled") if share is not None else (1.0, "assumed")


@lru_cache(maxsize=64)
def _sampled_share(model_dir: str, dataset_dir: str, num_samples: int, context: int) -> float | None:
    from ..ml.datasets import TextDataset
    from .tokens import model_tokenizer

    tokenizer = model_tokenizer(model_dir)
    if tokenizer is None or num_samples < 1 or not Path(dataset_dir).is_dir():
        return None
    texts = TextDataset(Path(dataset_dir))
    # A text's first tokens are all that can count; at least 8 texts, within SAMPLE_CHARS in all.
    chars = min(context * CHARS_PER_TOKEN, SAMPLE_CHARS // 8)
    wanted = min(SAMPLE_CHARS // chars, SAMPLE_TEXTS)
    step = max(len(texts) // wanted, 1)
    picked = [texts.prefix(i, chars) for i in range(0, len(texts), step)][:wanted]
    lengths = [min(len(encoding.ids), context) for encoding in tokenizer.encode_batch(picked)]
    return sum(lengths) / (len(lengths) * context) if lengths else None


def estimate_for(model, data: dict) -> Estimate:
    """The estimate for `model` with an ExtractionForm's valid cleaned settings (`data`)."""
    dataset, max_samples = data["dataset"], data["max_samples"]
    samples = min(dataset.num_samples, max_samples) if max_samples else dataset.num_samples
    memory = model.memory_footprint_bytes or quant.estimate_memory_bytes(
        model.params_count or 0, model.quantization
    )
    share, source = real_token_share(model, dataset, data["context_length"])
    return estimate(
        samples=samples,
        layers=len(set(data["layers"])),
        hooks=len(set(data["hooks"])),
        context=data["context_length"],
        real_share=share,
        share_source=source,
        hidden=model.hidden_size,
        dtype=data["dtype"],
        batch_size=data["batch_size"],
        top_k=data["top_k"],
        model_memory=memory,
        free_bytes=hub.free_disk_bytes(settings.ACTIVATIONS_DIR),
    )


def live(form, attempted: bool) -> dict:
    """The modal's live estimate, judged by the same form (and messages) as the submit: figures
    only for settings the submit would take; otherwise each field's errors, for its own place.
    A required choice left empty (a dataset, a layer, a hook type) is not an error while the
    form is being filled, only `missing`, until a submit was `attempted`. Files the disk cannot
    hold are the estimate's own warning here, not the submit's refusal."""
    form.is_valid()
    field_errors: dict[str, list[str]] = {}
    missing: list[str] = []
    whole_form_errors: list[str] = []
    for name, errors in form.errors.as_data().items():
        for error in errors:
            if name == NON_FIELD_ERRORS:
                if error.code != form.NO_ROOM:
                    whole_form_errors.extend(error.messages)
                continue
            waiting = error.code == "required" and not attempted
            (missing if waiting else field_errors.setdefault(name, [])).extend(error.messages)
    return {
        "est": form.estimate,
        "missing": missing,
        "field_errors": field_errors,
        "whole_form_errors": whole_form_errors,
        "invalid": bool(field_errors or whole_form_errors),
    }
