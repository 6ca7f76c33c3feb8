"""Templates in the admin: favorites editable in the list, JSON export as an action, and an
import page linked from the changelist (the same import/export code as the tab and the commands)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from . import import_export
from .forms import ImportForm, TemplateForm
from .models import ExtractionTemplate


@admin.register(ExtractionTemplate)
class ExtractionTemplateAdmin(admin.ModelAdmin):
    form = TemplateForm
    change_list_template = "admin/templates_app/extractiontemplate/change_list.html"
    list_display = (
        "name",
        "is_favorite",
        "layers",
        "hooks",
        "max_samples",
        "batch_size",
        "dtype",
        "owner",
        "updated_at",
    )
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    list_display_links = ("name",)
    list_editable = ("is_favorite",)
    list_per_page = 25  # each row is a form (the favorite toggle), rendered field by field
    search_fields = ("name", "description")
    list_filter = ("is_favorite", "dtype", "created_at")
    readonly_fields = ("created_at", "updated_at")
    actions = ["export_selected"]

    def get_changelist_form(self, request, **kwargs):
        # The list edits only the star: a plain form per row, not TemplateForm, whose defaults
        # and aliases cost time for every one of the page's rows.
        return forms.modelform_factory(ExtractionTemplate, fields=["is_favorite"])

    @admin.display(description="Layers")
    def layers(self, obj: ExtractionTemplate) -> str:
        return obj.layers_label

    @admin.display(description="Hooks")
    def hooks(self, obj: ExtractionTemplate) -> str:
        return obj.hooks_label

    @admin.action(description="Export selected as JSON")
    def export_selected(self, request: HttpRequest, queryset) -> HttpResponse:
        return import_export.export_response(queryset.order_by("pk"))

    def get_urls(self):
        extra = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="templates_app_extractiontemplate_import",
            )
        ]
        return extra + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        problems: list[str] = []
        if request.method == "POST" and form.is_valid():
            policy = form.cleaned_data["on_duplicate"]
            if policy == "overwrite" and not self.has_change_permission(request):
                raise PermissionDenied
            try:
                summary = import_export.import_payload(
                    form.cleaned_data["file"].read(), policy, user=request.user
                )
            except import_export.ImportRefused as exc:
                problems = exc.problems
            else:
                detail = "; ".join(summary.lines())
                self.message_user(
                    request, f"Imported: {summary}." + (f" {detail}." if detail else ""), messages.SUCCESS
                )
                return redirect("admin:templates_app_extractiontemplate_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "problems": problems,
            "title": "Import templates from JSON",
        }
        return TemplateResponse(request, "admin/templates_app/extractiontemplate/import.html", context)
