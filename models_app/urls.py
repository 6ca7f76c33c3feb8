from django.urls import path

from .views import (
    api_tokens,
    comparisons,
    exports,
    extract_modal,
    history,
)
from .views import (
    datasets as dataset_views,
)
from .views import (
    extractions as extraction_views,
)
from .views import (
    models as views,
)

app_name = "models_app"

urlpatterns = [
    path("", views.index, name="index"),
    path("models/preview/", views.preview, name="preview"),
    path("models/download/", views.download, name="download"),
    path("models/<int:pk>/", views.card, name="card"),
    path("models/<int:pk>/cancel/", views.cancel, name="cancel"),
    path("models/<int:pk>/restart/", views.restart, name="restart"),
    path("models/<int:pk>/rename/", views.rename, name="rename"),
    path("models/<int:pk>/delete/", views.delete, name="delete"),
    path("models/<int:pk>/architecture/", views.architecture, name="architecture"),
    path("models/<int:pk>/extract/", extract_modal.modal, name="extract"),
    path("models/<int:pk>/extract/estimate/", extract_modal.estimate_view, name="extract-estimate"),
    path("models/<int:pk>/extract/start/", extract_modal.start, name="extract-start"),
    path("extractions/", history.index, name="extractions"),
    path("extractions/import/", history.import_found, name="extraction-import"),
    path("extractions/found/delete/", history.delete_found, name="found-delete"),
    path("extractions/<int:pk>/", extraction_views.detail, name="extraction"),
    path("extractions/<int:pk>/row/", extraction_views.row, name="extraction-row"),
    path("extractions/<int:pk>/delete/", extraction_views.delete, name="extraction-delete"),
    path("extractions/<int:pk>/examples/", extraction_views.examples, name="extraction-examples"),
    path(
        "extractions/<int:pk>/neurons/<str:key>/<int:index>/",
        extraction_views.neuron,
        name="extraction-neuron",
    ),
    path("extractions/<int:pk>/files/<str:name>", extraction_views.download, name="extraction-file"),
    path("extractions/<int:pk>/cancel/", extraction_views.cancel, name="extraction-cancel"),
    path("extractions/<int:pk>/retry/", extraction_views.retry, name="extraction-retry"),
    path("extractions/<int:pk>/exports/", exports.start, name="export-start"),
    path("extractions/<int:pk>/comparisons/", comparisons.start, name="comparison-start"),
    path(
        "extractions/<int:pk>/comparisons/candidates/", comparisons.candidates, name="comparison-candidates"
    ),
    path("extractions/compare/", comparisons.start_from_list, name="comparison-from-list"),
    path("comparisons/<int:pk>/", comparisons.detail, name="comparison"),
    path("comparisons/<int:pk>/cancel/", comparisons.cancel, name="comparison-cancel"),
    path("comparisons/<int:pk>/delete/", comparisons.delete, name="comparison-delete"),
    path("exports/<int:pk>/cancel/", exports.cancel, name="export-cancel"),
    path("exports/<int:pk>/delete/", exports.delete, name="export-delete"),
    path("exports/<int:pk>/files/<str:name>", exports.download_file, name="export-file"),
    path("exports/<int:pk>/archive/", exports.download_archive, name="export-archive"),
    path("account/tokens/", api_tokens.index, name="api-tokens"),
    path("account/tokens/<int:pk>/revoke/", api_tokens.revoke, name="api-token-revoke"),
    path("datasets/", dataset_views.index, name="datasets"),
    path("datasets/upload/", dataset_views.upload, name="dataset-upload"),
    path("datasets/hub/", dataset_views.add_from_hub, name="dataset-hub"),
    path("datasets/<int:pk>/", dataset_views.card, name="dataset"),
    path("datasets/<int:pk>/delete/", dataset_views.delete, name="dataset-delete"),
    path("datasets/<int:pk>/cancel/", dataset_views.cancel, name="dataset-cancel"),
    path("datasets/<int:pk>/retry/", dataset_views.retry, name="dataset-retry"),
]
