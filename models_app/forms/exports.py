"""The export form: what an extraction's page, the API and `manage.py export_activations` ask for.
It checks the options against the extraction's files as the export itself would (an unknown
hook, a context size with no whole row), so a refusal shows at its field before a job starts."""

from __future__ import annotations

from pathlib import Path

from django import forms

from ..ml import exports
from ..models import ActivationExport, Extraction
from ..models.export import FORMAT_CHOICES

MAX_SEED = 2**31 - 1  # the record's integer column


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=FORMAT_CHOICES, initial="saelens")
    hooks = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to export every hook of the extraction.",
    )
    context_size = forms.IntegerField(
        required=False, min_value=1, help_text="saelens: tokens per row (default: the extraction's context)"
    )
    shuffle_seed = forms.IntegerField(
        required=False, min_value=0, max_value=MAX_SEED, help_text="saelens: shuffle the rows with this seed"
    )

    def __init__(self, *args, extraction: Extraction, **kwargs):
        super().__init__(*args, **kwargs)
        self.extraction = extraction
        hooks = self.fields["hooks"]
        assert isinstance(hooks, forms.MultipleChoiceField)
        hooks.choices = [(key, key) for key in extraction.statistics]
        hooks.error_messages["invalid_choice"] = (
            f"No hook %(value)s in this extraction: it has {', '.join(extraction.statistics)}."
        )

    def clean(self) -> dict | None:
        data = super().clean() or {}
        if refused := self.extraction.export_refusal:
            raise forms.ValidationError(refused)
        if data.get("format") == "tokens":
            for name in ("context_size", "shuffle_seed"):
                if data.get(name) is not None:
                    self.add_error(name, "This applies to the saelens format only.")
        if self.errors:
            return data
        try:
            exports.check(data["format"], self.extraction.output_dir, **self.options())
        except exports.ExportError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc))
        return data

    def options(self) -> dict:
        data = self.cleaned_data
        options: dict = {"hooks": data.get("hooks") or None}
        if data.get("format") == "saelens":
            options.update(context_size=data.get("context_size"), shuffle_seed=data.get("shuffle_seed"))
        return options

    def create(self, owner=None, queue: bool = True, folder: Path | None = None) -> ActivationExport:
        """The record of this valid form's export, queued unless the caller runs the job itself
        (the terminal, which may also choose the folder)."""
        data = self.cleaned_data
        record = ActivationExport.objects.create(
            extraction=self.extraction,
            owner=owner,
            format=data["format"],
            hooks=list(data.get("hooks") or []),
            context_size=data.get("context_size") if data["format"] == "saelens" else None,
            shuffle_seed=data.get("shuffle_seed") if data["format"] == "saelens" else None,
            folder_path=str(Path(folder).absolute()) if folder else "",
        )
        if queue:
            record.enqueue()
        return record
