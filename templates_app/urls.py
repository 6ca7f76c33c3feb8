from django.urls import path

from .views import editing, from_extraction, import_export, listing

app_name = "templates_app"

urlpatterns = [
    path("", listing.index, name="index"),
    path("new/", editing.create, name="create"),
    path("<int:pk>/edit/", editing.edit, name="edit"),
    path("<int:pk>/duplicate/", editing.duplicate, name="duplicate"),
    path("<int:pk>/delete/", editing.delete, name="delete"),
    path("<int:pk>/favorite/", editing.favorite, name="favorite"),
    path("export/", import_export.export, name="export"),
    path("import/", import_export.import_file, name="import"),
    # The extraction modal's "Save as template", for the model the modal is open on.
    path("from-model/<int:pk>/", from_extraction.save_as_template, name="save-from-extraction"),
]
