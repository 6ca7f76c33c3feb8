"""The Models list's filters and the rename form."""

from __future__ import annotations

from django import forms

from ..models import FORMAT_CHOICES, LanguageModel, ModelStatus


class RenameForm(forms.ModelForm):
    class Meta:
        model = LanguageModel
        fields = ["name"]
        error_messages = {"name": {"required": "A name cannot be empty."}}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("A name cannot be empty.")
        return name


SORTS = {
    "newest": ("Newest", ["-created_at", "-pk"]),
    "oldest": ("Oldest", ["created_at", "pk"]),
    "name": ("Name", ["name", "pk"]),
    "params": ("Parameters", ["-params_count", "-pk"]),
    "disk": ("Disk size", ["-disk_size_bytes", "-pk"]),
}


class ModelFilterForm(forms.Form):
    # The filters show no labels: each field names itself to a screen reader (aria-label).
    q = forms.CharField(
        required=False,
        widget=forms.TextInput(
            attrs={
                "placeholder": "Search name or repository",
                "type": "search",
                "aria-label": "Search name or repository",
            }
        ),
    )
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any status")] + list(ModelStatus.choices),
        widget=forms.Select(attrs={"aria-label": "Status"}),
    )
    quantization = forms.ChoiceField(
        required=False,
        choices=[("", "Any format")] + FORMAT_CHOICES,
        widget=forms.Select(attrs={"aria-label": "Format"}),
    )
    architecture = forms.ChoiceField(
        required=False,
        choices=[("", "Any architecture")],
        widget=forms.Select(attrs={"aria-label": "Architecture"}),
    )
    sort = forms.ChoiceField(
        required=False,
        choices=[(k, v[0]) for k, v in SORTS.items()],
        widget=forms.Select(attrs={"aria-label": "Sort by"}),
    )

    def __init__(self, *args, user, **kwargs):
        # Its own ids: the download form on the same page has a `quantization` field too.
        kwargs.setdefault("auto_id", "filter-%s")
        super().__init__(*args, **kwargs)
        architectures = (
            LanguageModel.objects.visible_to(user)
            .exclude(architecture="")
            .order_by("architecture")
            .values_list("architecture", flat=True)
            .distinct()
        )
        field = self.fields["architecture"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "Any architecture")] + [(a, a) for a in architectures]

    def apply(self, queryset):
        if not self.is_valid():
            return queryset.order_by(*SORTS["newest"][1])
        data = self.cleaned_data
        if data["q"]:
            from django.db.models import Q

            queryset = queryset.filter(Q(name__icontains=data["q"]) | Q(repo_id__icontains=data["q"]))
        for field in ("status", "quantization", "architecture"):
            if data[field]:
                queryset = queryset.filter(**{field: data[field]})
        return queryset.order_by(*SORTS[data["sort"] or "newest"][1])
