"""The API tokens page: a user makes tokens for their scripts (each shown once) and revokes them."""
from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from ..models import ApiToken

PAGE = "models_app/api_tokens.html"


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name",
                           widget=forms.TextInput(attrs={"placeholder": "e.g. notebook server"}),
                           error_messages={"required": "Name the token after where it will be used."})


@login_required
@require_http_methods(["GET", "POST"])
@sensitive_variables("token")
def index(request: HttpRequest) -> HttpResponse:
    form, token = TokenForm(request.POST or None), None
    if request.method == "POST" and form.is_valid():
        _record, token = ApiToken.issue(request.user, form.cleaned_data["name"])
        form = TokenForm()
    context = {"form": form, "new_token": token, "tokens": request.user.api_tokens.all()}
    response = render(request, PAGE, context, status=422 if form.errors else 200)
    response["Cache-Control"] = "no-store"  # the new token is on this page once, never in a cache
    return response


@login_required
@require_POST
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    get_object_or_404(ApiToken, pk=pk, user=request.user).delete()
    return redirect("models_app:api-tokens")
