"""Choice fields that name their records as the pages do (Django's way to label a
ModelChoiceField's choices is to override label_from_instance)."""

from __future__ import annotations

from django import forms

from ..models import Dataset, LanguageModel


class DatasetChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Dataset) -> str:
        return obj.label


class LanguageModelChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: LanguageModel) -> str:
        return f"{obj.name} ({obj.repo_id}@{obj.revision})"
