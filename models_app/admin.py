from __future__ import annotations

from django.contrib import admin, messages

from .models import ApiToken, Comparison, Dataset, Extraction, FormatCheck, LanguageModel

# Rows per admin list page: the time of a list page is rendering its rows, and 50 keep it well
# inside the pages' 100 ms budget (bench/pages.py) at any history size.
LIST_PER_PAGE = 50
JOB_FIELDS = (
    "status",
    "progress",
    "phase_detail",
    "bytes_downloaded",
    "bytes_total",
    "speed_bps",
    "eta_seconds",
    "error_message",
    "phase_log",
    "cancel_requested",
    "commit_sha",
    "effective_quantization",
    "quantization_note",
    "params_count",
    "file_path",
    "quantized_path",
    "memory_required_bytes",
    "memory_footprint_bytes",
    "disk_size_bytes",
    "architecture_config",
    "architecture_summary",
    "started_at",
    "completed_at",
    "created_at",
    "updated_at",
)


class EditableAfterCreation(admin.ModelAdmin):
    """A record's admin page changes only `editable` fields. The rest say what was downloaded,
    read or asked for (repository, revision, format, files, model, dataset, layers...) and what
    the job made of it; the files on disk follow them, so an edit would make the record describe
    files it does not have."""

    editable: tuple[str, ...] = ("owner",)

    def get_readonly_fields(self, request, obj=None) -> tuple[str, ...]:
        readonly = tuple(super().get_readonly_fields(request, obj))
        if obj is None:
            return readonly
        return readonly + tuple(
            field.name
            for field in self.model._meta.fields
            if field.editable
            and not field.primary_key
            and field.name not in self.editable
            and field.name not in readonly
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        # A row deleted here would leave its files on disk and its job running: records are
        # deleted from their cards (or `manage.py delete_model`), which do both.
        return False

    def save_model(self, request, obj, form, change: bool) -> None:
        if not change:
            return super().save_model(request, obj, form, change)
        # Only what was edited: saving the whole row would write the job's fields back as they
        # were when the page opened, over what a running job has recorded since.
        changed = {name: getattr(obj, name) for name in form.changed_data if name in self.editable}
        if changed:
            type(obj).set(obj.pk, **changed)


@admin.register(LanguageModel)
class LanguageModelAdmin(EditableAfterCreation):
    editable = ("name", "owner")
    list_per_page = LIST_PER_PAGE
    list_display = (
        "id",
        "name",
        "repo_id",
        "revision",
        "quantization",
        "effective_quantization",
        "status",
        "architecture",
        "params_count",
        "owner",
        "created_at",
    )
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)  # staff hand a record to its owner (one made from the terminal has none)
    list_filter = ("status", "quantization", "architecture")
    search_fields = ("name", "repo_id", "commit_sha")
    readonly_fields = JOB_FIELDS
    exclude = ("encrypted_token",)
    fields = ("name", "owner", "repo_id", "revision", "quantization", "trust_remote_code") + JOB_FIELDS

    def has_add_permission(self, request) -> bool:
        return False  # downloads start from the Models page or `manage.py download_model`


@admin.register(Dataset)
class DatasetAdmin(EditableAfterCreation):
    editable = ("name", "owner")
    list_per_page = LIST_PER_PAGE
    list_display = (
        "id",
        "name",
        "source",
        "source_detail",
        "file_format",
        "num_samples",
        "size_bytes",
        "status",
        "owner",
        "created_at",
    )
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    list_filter = ("status", "source", "file_format")
    search_fields = ("name", "source_detail")
    readonly_fields = (
        "source",
        "source_detail",
        "file_format",
        "status",
        "error_message",
        "num_samples",
        "size_bytes",
        "preview",
        "file_path",
        "created_at",
    )

    def has_add_permission(self, request) -> bool:
        return False  # datasets are added from the Datasets tab or `manage.py add_dataset`


@admin.register(Extraction)
class ExtractionAdmin(EditableAfterCreation):
    list_per_page = LIST_PER_PAGE
    list_display = (
        "id",
        "model",
        "dataset",
        "status",
        "samples_done",
        "samples_total",
        "dtype",
        "owner",
        "created_at",
    )
    list_select_related = ("model", "dataset", "owner")
    list_filter = ("status", "dtype")
    search_fields = ("model__name", "model__repo_id", "dataset__name")
    raw_id_fields = ("owner",)
    readonly_fields = tuple(f.name for f in Extraction._meta.fields if f.name != "owner")

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        # The list shows no metadata (statistics, histograms): do not load it for 100 rows.
        return (
            queryset.defer("metadata") if request.resolver_match.url_name.endswith("changelist") else queryset
        )

    def has_add_permission(self, request) -> bool:
        return False  # extractions start from a model card or `manage.py extract_activations`


@admin.register(Comparison)
class ComparisonAdmin(EditableAfterCreation):
    """Read-only but for the owner: the result is what the job computed from the files."""

    list_per_page = LIST_PER_PAGE
    list_display = ("id", "base", "other_ids", "status", "progress", "owner", "created_at")
    list_select_related = ("base__model", "owner")
    list_filter = ("status",)
    search_fields = ("base__model__name", "base__model__repo_id")
    raw_id_fields = ("owner",)
    readonly_fields = tuple(f.name for f in Comparison._meta.fields if f.name != "owner")

    def has_add_permission(self, request) -> bool:
        return False  # comparisons start from an extraction's page, the list or the terminal


@admin.register(FormatCheck)
class FormatCheckAdmin(EditableAfterCreation):
    """Read-only but for the owner: the result is what the job measured."""

    list_per_page = LIST_PER_PAGE
    list_display = ("id", "model", "model_ids", "dataset", "samples", "status", "owner", "created_at")
    list_select_related = ("model", "dataset", "owner")
    list_filter = ("status",)
    search_fields = ("model__name", "model__repo_id")
    raw_id_fields = ("owner",)
    readonly_fields = tuple(f.name for f in FormatCheck._meta.fields if f.name != "owner")

    def has_add_permission(self, request) -> bool:
        return False  # format checks start from the terminal or the API


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Staff make a token for a user (shown once, in the message after saving) or revoke one."""

    list_display = ("name", "user", "hint", "created_at", "last_used_at")
    list_select_related = ("user",)
    search_fields = ("name", "user__username")
    raw_id_fields = ("user",)
    fields = ("user", "name", "hint", "created_at", "last_used_at")
    readonly_fields = ("hint", "created_at", "last_used_at")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # A token acts as its user: only a superuser makes one for someone else.
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = db_field.remote_field.model.objects.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(
            request
        )  # a token is made or revoked, not edited

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        record, token = ApiToken.issue(obj.user, obj.name)
        obj.pk, obj.digest, obj.hint, obj.created_at = (
            record.pk,
            record.digest,
            record.hint,
            record.created_at,
        )
        messages.warning(request, f"The token for {obj.user}: {token} — copy it now, it is not shown again.")
