"""The format-check form: a ready model's repository, a dataset, how many of its samples and how
long a context. What the command and the API ask for; it refuses, before a job starts, a model with
no other ready format of the same commit to compare with."""

from __future__ import annotations

import shutil

from django import forms
from django.conf import settings

from ..formatting import bytesize
from ..ml.vocabulary import MAX_BATCH, MAX_CONTEXT
from ..models import Dataset, DatasetStatus, FormatCheck, LanguageModel
from ..models.format_check import format_of

# The reference's log-probabilities are stored for every position checked (positions x vocabulary
# x 4 bytes): a few thousand samples are plenty for KL figures, and keep that file bounded.
MAX_CHECK_SAMPLES = 2000
# ...and at most this many bytes of them, whatever the vocabulary (a Llama 3's is 128,256 tokens).
MAX_SCRATCH_BYTES = 8 * 2**30


class FormatCheckForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), help_text="Whose samples are run")
    samples = forms.IntegerField(min_value=1, max_value=MAX_CHECK_SAMPLES, initial=64, required=False)
    context_length = forms.IntegerField(min_value=2, max_value=MAX_CONTEXT, initial=128, required=False)
    batch_size = forms.IntegerField(min_value=1, max_value=MAX_BATCH, initial=8, required=False)

    def __init__(self, *args, model: LanguageModel, user=None, **kwargs):
        """`user`: whose models and datasets may be named (None: any, as in the terminal)."""
        super().__init__(*args, **kwargs)
        self.model, self.user = model, user
        datasets = Dataset.objects.all() if user is None else Dataset.objects.visible_to(user)
        dataset = self.fields["dataset"]
        assert isinstance(dataset, forms.ModelChoiceField)
        dataset.queryset = datasets.filter(status=DatasetStatus.READY)
        dataset.error_messages["invalid_choice"] = "No ready dataset with this id."

    def clean(self) -> dict | None:
        data = super().clean() or {}
        for name in ("samples", "context_length", "batch_size"):
            if data.get(name) is None:
                data[name] = self.fields[name].initial
        self.formats = FormatCheck.formats_of(self.model, self.user)
        if self.model not in self.formats:
            raise forms.ValidationError(f"Model {self.model.pk} is not ready: only ready models are checked.")
        if len(self.formats) < 2:
            raise forms.ValidationError(
                f"{self.model.repo_id} is ready in {format_of(self.model).upper()} only: download it in"
                " another format (Q8, Q4, Q2...) to check what quantization changes."
            )
        longest = min((m.max_position for m in self.formats if m.max_position), default=None)
        if longest and data["context_length"] > longest:
            self.add_error("context_length", f"{self.model.repo_id} reads at most {longest} tokens at once.")
            return data
        self._refuse_a_scratch_too_large(data)
        return data

    def _refuse_a_scratch_too_large(self, data: dict) -> None:
        """The reference's log-probabilities (at most samples x (context - 1) positions x
        vocabulary x 4 bytes) must fit the budget and the disk."""
        vocabulary = max(self.model.vocab_size, 1)
        needed = data["samples"] * (data["context_length"] - 1) * vocabulary * 4
        free = shutil.disk_usage(settings.DATA_DIR).free
        if needed > min(MAX_SCRATCH_BYTES, free):
            raise forms.ValidationError(
                f"{data['samples']} samples of {data['context_length']} tokens keep up to {bytesize(needed)}"
                f" of the reference's next-token log-probabilities on disk ({vocabulary:,} tokens each), over"
                f" the {bytesize(min(MAX_SCRATCH_BYTES, free))} a check may use: choose fewer samples or a"
                " shorter context."
            )

    def create(self, owner=None, queue: bool = True) -> FormatCheck:
        """The record of this valid form's check (every ready format of the model's repository and
        commit, the most precise first), queued unless the caller runs the job itself."""
        data = self.cleaned_data
        record = FormatCheck.objects.create(
            model=self.model,
            model_ids=[m.pk for m in self.formats],
            dataset=data["dataset"],
            samples=data["samples"],
            context_length=data["context_length"],
            batch_size=data["batch_size"],
            owner=owner,
        )
        if queue:
            record.enqueue()
        return record
