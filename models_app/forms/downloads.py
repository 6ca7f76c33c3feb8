"""Forms own validation: field rules here, and the Hub pre-flight in DownloadForm.clean so an
unknown repo, a gated repo or a missing revision is reported next to its field before anything
is created. A valid DownloadForm creates its record (DownloadForm.create)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from .. import token_crypto
from ..ml import hub
from ..ml import quantization as quant
from ..models import FORMAT_CHOICES, LanguageModel, ModelStatus
from ..services import downloads

FORMAT_WIDGET_CHOICES = [(fmt, quant.DESCRIPTIONS[fmt]) for fmt in quant.FORMATS]


class HubInputs:
    """The checks of the fields any Hub form may have (revision, token): refused at the field,
    before a request carries them (ml.hub.check_revision / check_token)."""

    cleaned_data: dict[str, Any]  # mixed into a forms.Form, which has it

    def clean_revision(self) -> str:
        revision = self.cleaned_data.get("revision") or "main"
        problem = hub.check_revision(revision)
        if problem:
            raise forms.ValidationError(problem)
        return revision

    def clean_token(self) -> str:
        token = self.cleaned_data.get("token") or ""
        problem = hub.check_token(token)
        if problem:
            raise forms.ValidationError(problem)
        return token


class RepoForm(HubInputs, forms.Form):
    repo_id = forms.CharField(
        label="Repository",
        max_length=400,
        strip=True,
        widget=forms.TextInput(
            attrs={
                "placeholder": "e.g., TinyLlama/TinyLlama-1.1B-Chat-v1.0",
                "autocomplete": "off",
                "spellcheck": "false",
            }
        ),
    )
    revision = forms.CharField(
        label="Revision",
        max_length=255,
        required=False,
        initial="main",
        widget=forms.TextInput(attrs={"placeholder": "main"}),
    )
    quantization = forms.ChoiceField(
        label="Quantization", choices=FORMAT_WIDGET_CHOICES, initial=quant.DEFAULT_FORMAT
    )
    token = forms.CharField(
        label="Access token",
        required=False,
        strip=True,
        help_text="Optional — for gated models like Llama or Gemma. Used for this download only, "
        "stored encrypted until the job ends.",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "placeholder": "hf_…"}),
    )
    trust_remote_code = forms.BooleanField(
        label="Trust remote code",
        required=False,
        help_text="Runs Python code from the repository on this machine. Only enable it for "
        "repositories you trust.",
    )

    preflight: hub.Preflight | None = None

    def __init__(self, *args, user=None, **kwargs):
        """`user`: who asks (None for the terminal, where the operator is the user)."""
        super().__init__(*args, **kwargs)
        self.user = user
        self.remote_code_refusal = remote_code_refusal(user)
        self.operator_token_allowed = token_crypto.may_use_operator_token(user)
        if self.remote_code_refusal:
            field = self.fields["trust_remote_code"]
            field.disabled = True
            field.help_text = self.remote_code_refusal

    def clean_trust_remote_code(self) -> bool:
        # A disabled field ignores what was sent; read it anyway to refuse it out loud.
        wanted = forms.CheckboxInput().value_from_datadict(
            self.data, self.files, self.add_prefix("trust_remote_code")
        )
        if wanted and self.remote_code_refusal:
            raise forms.ValidationError(self.remote_code_refusal)
        return wanted

    def clean_repo_id(self) -> str:
        repo_id = self.cleaned_data["repo_id"]
        problem = hub.check_repo_id(repo_id)
        if problem:
            raise forms.ValidationError(problem)
        return repo_id

    def run_preflight(self) -> None:
        """Ask the Hub; its answer's problems become field errors."""
        if self.errors:
            return
        data = self.cleaned_data
        try:
            self.preflight = hub.preflight(
                data["repo_id"],
                data["revision"],
                token=token_crypto.hub_token(data.get("token") or None, self.operator_token_allowed),
                endpoint=settings.HF_ENDPOINT,
                trust_remote_code=data.get("trust_remote_code", False),
            )
        except hub.HubError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)


def remote_code_refusal(user) -> str:
    """Why this user may not run repository code here, or "" when they may."""
    if not settings.ALLOW_REMOTE_CODE:
        return (
            "Repository code is turned off on this studio: the operator can allow it with "
            "MISTUDIO_ALLOW_REMOTE_CODE=1 (staff accounts only)."
        )
    if user is not None and not user.is_staff:
        return "Only staff accounts may run repository code on this studio."
    return ""


class PreviewForm(RepoForm):
    def clean(self):
        cleaned = super().clean()
        self.run_preflight()
        return cleaned


class DownloadForm(RepoForm):
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # Form.clean returns cleaned_data
        if self.errors:
            return cleaned
        duplicate = LanguageModel.duplicate_of(
            cleaned["repo_id"], cleaned["revision"], cleaned["quantization"], owner=self.user
        )
        if duplicate:
            # On the repository field, fact first: that is where the user looks and what they change.
            self.add_error("repo_id", duplicate_message(duplicate))
            return cleaned
        self.run_preflight()
        if self.preflight:
            self._check_disk(self.preflight)
        return cleaned

    def _check_disk(self, pre: hub.Preflight) -> None:
        free = hub.free_disk_bytes(settings.HF_CACHE_DIR)
        if pre.download_bytes > free:
            self.add_error(
                None,
                f"Not enough disk space: the download needs "
                f"{pre.download_bytes / 1e9:.2f} GB and {free / 1e9:.2f} GB is free.",
            )

    def create(self, owner=None, queue: bool = True) -> LanguageModel:
        """The record of this valid form's download, queued unless the caller runs the job itself
        (the CLI). `owner`: who asked for it (None from the terminal). Raises
        services.downloads.AlreadyInStudio when a same download was added meanwhile."""
        data = self.cleaned_data
        assert self.preflight is not None  # a valid form has the Hub's answer (clean)
        return downloads.create_download(
            self.preflight,
            data["quantization"],
            data.get("token") or None,
            trust_remote_code=data["trust_remote_code"],
            use_operator_token=self.operator_token_allowed,
            owner=owner,
            queue=queue,
        )


def duplicate_message(duplicate: LanguageModel) -> str:
    """Why a download is refused when the studio already has this repo, revision and format (in
    a private studio, the user's own: LanguageModel.duplicate_of)."""
    what = f"{duplicate.repo_id}@{duplicate.revision} in {quant.LABELS[duplicate.quantization]}"
    where = f"(“{duplicate.name}”, {duplicate.get_status_display().lower()})"
    if duplicate.status == ModelStatus.READY:
        return f"Already downloaded: {what} is in the studio {where}."
    if duplicate.is_active:
        return f"Already downloading: {what} is in the studio {where}."
    return f"Already in the studio: {what} {where}; retry or delete it from its card."


class RestartForm(HubInputs, forms.Form):
    quantization = forms.ChoiceField(choices=FORMAT_CHOICES)
    token = forms.CharField(required=False, strip=True, widget=forms.PasswordInput(render_value=False))

    def __init__(self, *args, record: LanguageModel, **kwargs):
        super().__init__(*args, **kwargs)
        self.record = record

    def _check_access(self, token: str) -> None:
        """A new token, or a gated repository, is tried on the Hub now, as a first download's is:
        a wrong token is said at its field, not minutes later by the job."""
        if not token and not self.record.gated:
            return
        try:
            hub.preflight(
                self.record.repo_id,
                self.record.revision,
                token=token_crypto.hub_token(token or None, self.record.use_operator_token),
                endpoint=settings.HF_ENDPOINT,
            )
        except hub.HubError as exc:
            self.add_error("token" if exc.field in ("token", "repo_id") else None, exc.message)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # Form.clean returns cleaned_data
        if not self.record.can_restart:
            raise forms.ValidationError("This model is still being processed.")
        running = self.record.running_extractions.first()  # queued ones too
        if running is not None:  # it reads this model's files: they must not change under it
            raise forms.ValidationError(
                f"Extraction {running.pk} of this model is "
                f"{running.get_status_display().lower()}: cancel it first."
            )
        fmt = cleaned.get("quantization")
        if fmt and LanguageModel.duplicate_of(
            self.record.repo_id, self.record.revision, fmt, owner=self.record.owner, exclude_pk=self.record.pk
        ):
            raise forms.ValidationError(f"This revision is already in the studio in {quant.LABELS[fmt]}.")
        if not self.errors:
            self._check_access(cleaned.get("token") or "")
        return cleaned
