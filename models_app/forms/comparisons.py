"""The comparison form: what the API and `manage.py compare_extractions` ask for. It checks the
extractions as the comparison itself would (completed, seen by the user, the same model commit,
dataset, samples and context length, a shared (layer, hook)), so a refusal shows before a job
starts."""

from __future__ import annotations

from django import forms
from django.conf import settings

from ..ml import compare
from ..models import Comparison, Extraction


class ComparisonForm(forms.Form):
    others = forms.TypedMultipleChoiceField(
        coerce=int, help_text="The extractions to compare with this one (the reference)"
    )

    def __init__(self, *args, base: Extraction, user=None, **kwargs):
        """`user`: whose extractions may be named (None: any, as in the terminal)."""
        super().__init__(*args, **kwargs)
        self.base = base
        visible = Extraction.objects.all() if user is None else Extraction.objects.visible_to(user)
        others = self.fields["others"]
        assert isinstance(others, forms.TypedMultipleChoiceField)
        others.choices = [(pk, str(pk)) for pk in visible.exclude(pk=base.pk).values_list("pk", flat=True)]
        others.error_messages["invalid_choice"] = "No extraction with id %(value)s to compare with."

    def clean(self) -> dict | None:
        data = super().clean() or {}
        ids = data.get("others") or []
        if self.errors:
            return data
        if len(set(ids)) < len(ids):
            self.add_error("others", "Each extraction can be named once.")
            return data
        found = Extraction.objects.in_bulk(ids)
        if settings.PRIVATE:  # whoever sees the base sees the result, figures and ids included
            for pk in ids:
                if found[pk].owner_id != self.base.owner_id:
                    raise forms.ValidationError(
                        f"Extraction {pk} has another owner than extraction {self.base.pk}: in a private"
                        " studio only one owner's extractions are compared."
                    )
        for record in (self.base, *(found[pk] for pk in ids)):
            if not record.is_completed:
                raise forms.ValidationError(
                    f"Extraction {record.pk} is not completed: only completed extractions compare."
                )
        try:
            # Named by the studio's ids, whatever a folder's metadata.json says.
            base = {**compare.describe(self.base.output_dir), "id": self.base.pk}
            for pk in ids:
                other = {**compare.describe(found[pk].output_dir), "id": pk}
                if reason := compare.why_not_comparable(base, other):
                    raise forms.ValidationError(reason)
        except compare.ComparisonError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data

    def create(self, owner=None, queue: bool = True) -> Comparison:
        """The record of this valid form's comparison, queued unless the caller runs the job
        itself (the terminal)."""
        record = Comparison.objects.create(base=self.base, other_ids=self.cleaned_data["others"], owner=owner)
        if queue:
            record.enqueue()
        return record
