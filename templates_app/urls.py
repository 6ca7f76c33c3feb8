from django.urls import path

from .views import editing, listing, transfer

app_name = "templates_app"

urlpatterns = [
    path("", listing.index, name="index"),
    path("new/", editing.create, name="create"),
    path("<int:pk>/edit/", editing.edit, name="edit"),
    path("<int:pk>/duplicate/", editing.duplicate, name="duplicate"),
    path("<int:pk>/delete/", editing.delete, name="delete"),
    path("<int:pk>/favorite/", editing.favorite, name="favorite"),
    path("export/", transfer.export, name="export"),
    path("import/", transfer.import_file, name="import"),
]
