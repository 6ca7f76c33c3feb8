from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from models_app.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("templates/", include("templates_app.urls")),
    path("", include("models_app.urls")),
]
