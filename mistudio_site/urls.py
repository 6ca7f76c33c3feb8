from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path

from .api import api


def favicon(request: HttpRequest) -> HttpResponse:
    """The icon, for pages that do not name one (the admin's, the API docs): browsers ask for
    /favicon.ico there. The studio's own pages link it (templates/base.html)."""
    return redirect(static("favicon.svg"), permanent=True)


urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("templates/", include("templates_app.urls")),
    path("", include("models_app.urls")),
]
