"""Adding a dataset: an uploaded file, or a Hub dataset repository (which a valid
HubDatasetForm queues, HubDatasetForm.queue)."""

from __future__ import annotations

from django import forms
from django.conf import settings

from .. import token_crypto
from ..models import Dataset
from ..services import datasets as dataset_services
from .downloads import HubInputs


class UploadDatasetForm(forms.Form):
    file = forms.FileField(
        label="File", help_text=".txt (one sample per line), .jsonl, .json, .csv or .parquet"
    )
    name = forms.CharField(
        max_length=200, required=False, widget=forms.TextInput(attrs={"placeholder": "Name (optional)"})
    )
    text_field = forms.CharField(
        max_length=200,
        initial="text",
        label="Text field / column",
        help_text="For .jsonl, .json, .csv and .parquet",
    )

    def __init__(self, *args, **kwargs) -> None:
        # Both dataset forms share a page and field names (name, text_field): ids stay apart.
        kwargs.setdefault("auto_id", "upload-%s")
        super().__init__(*args, **kwargs)
        # The browser refuses a file over the limit before sending it (static/js/studio.js): the
        # server refuses such a body from its length, with no page to show the reason on.
        self.fields["file"].widget.attrs["data-max-bytes"] = settings.MAX_UPLOAD_BYTES


class HubDatasetForm(HubInputs, forms.Form):
    repo_id = forms.CharField(
        max_length=400,
        label="Dataset repository",
        widget=forms.TextInput(attrs={"placeholder": "e.g., roneneldan/TinyStories"}),
    )
    revision = forms.CharField(max_length=255, initial="main", required=False)
    # The form's metaclass moves declared fields off the class: BaseForm.files stays the uploads.
    files = forms.CharField(  # type: ignore[assignment]
        max_length=300,
        required=False,
        label="Files",
        widget=forms.TextInput(attrs={"placeholder": "e.g., data/train-*.parquet (optional)"}),
    )
    text_field = forms.CharField(max_length=200, initial="text", label="Text field / column")
    name = forms.CharField(
        max_length=200, required=False, widget=forms.TextInput(attrs={"placeholder": "Name (optional)"})
    )
    token = forms.CharField(
        required=False,
        label="Access token",
        widget=forms.PasswordInput(render_value=False, attrs={"placeholder": "hf_… (gated datasets)"}),
    )

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", "hub-%s")  # apart from the upload form's ids (see above)
        super().__init__(*args, **kwargs)

    def queue(self, owner) -> Dataset:
        """The record of this valid form's dataset, queued for its job once the repository's
        files are found on the Hub. Raises HubError (the repository, revision or token) and
        DatasetError (the matched files), for the caller to place."""
        data = self.cleaned_data
        return dataset_services.queue_from_hub(
            data["repo_id"],
            data["name"],
            data["revision"],
            data["files"],
            data["text_field"],
            data["token"] or None,
            use_operator_token=token_crypto.may_use_operator_token(owner),
            owner=owner,
        )
