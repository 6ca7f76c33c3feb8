"""Starting and restarting model downloads (the page, the CLI and the admin share these)."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from .. import token_crypto
from ..ml import hub
from ..models import LanguageModel, ModelStatus


class AlreadyInStudio(Exception):
    """The same repository, revision and format was added meanwhile (two submits at once): the
    database's unique constraint refused the second."""


def create_download(
    pre: hub.Preflight,
    fmt: str,
    token: str | None,
    trust_remote_code: bool = False,
    name: str = "",
    queue: bool = True,
    use_operator_token: bool = True,
    owner=None,
) -> LanguageModel:
    """Create the queued record; `queue=False` when the caller runs the job itself (the CLI).
    `use_operator_token`: whether the job may fall back to the operator's Hub credentials."""
    try:
        return _create(pre, fmt, token, trust_remote_code, name, queue, use_operator_token, owner)
    except IntegrityError:
        from ..forms.downloads import duplicate_message

        duplicate = LanguageModel.duplicate_of(pre.repo_id, pre.revision, fmt, owner=owner)
        raise AlreadyInStudio(
            duplicate_message(duplicate)
            if duplicate
            else "This repository, revision and format was just added."
        ) from None


def _create(
    pre: hub.Preflight,
    fmt: str,
    token: str | None,
    trust_remote_code: bool,
    name: str,
    queue: bool,
    use_operator_token: bool,
    owner,
) -> LanguageModel:
    with transaction.atomic():
        record = LanguageModel.objects.create(
            name=name or pre.repo_id.split("/")[-1],
            repo_id=pre.repo_id,
            revision=pre.revision,
            commit_sha=pre.commit_sha,
            architecture=pre.summary.get("model_type", ""),
            params_count=pre.params_count,
            quantization=fmt,
            trust_remote_code=trust_remote_code,
            gated=pre.gated,
            use_operator_token=use_operator_token,
            owner=owner,
            architecture_config=pre.config,
            architecture_summary=pre.summary,
            memory_required_bytes=pre.memory_by_format[fmt],
            bytes_total=pre.download_bytes,
            encrypted_token=token_crypto.encrypt(token) if token else None,
            phase_log=[{"status": ModelStatus.QUEUED, "at": None, "detail": ""}],
        )
        if queue:
            record.enqueue()
    return record


def restart(record: LanguageModel, fmt: str, token: str | None = None) -> LanguageModel:
    """Retry, or re-download in any format: the same record goes back to the queue. Files
    already downloaded stay, so the download resumes from them; a quantized copy is built again
    from them (the revision may have moved, and a copy may be a failed job's)."""
    record.release_quantized()  # files first, outside the transaction
    with transaction.atomic():
        record.prepare_retry()
        record.quantization = fmt
        record.quantization_note = ""
        record.effective_quantization = ""
        record.memory_footprint_bytes = None
        record.memory_required_bytes = record.estimated_memory_by_format.get(fmt)
        record.phase_log = [{"status": ModelStatus.QUEUED, "at": None, "detail": ""}]
        if token:
            record.encrypted_token = token_crypto.encrypt(token)
        record.save()
        record.enqueue()
    return record
