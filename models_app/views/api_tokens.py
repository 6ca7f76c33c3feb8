"""The API tokens page: a user makes tokens for their scripts (each shown once) and revokes them.

Making one answers with a redirect (a reload must not make another); the new token waits for
that one page view in the session, encrypted with the token keys, and is gone once shown."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from .. import token_crypto
from ..models import ApiToken

PAGE = "models_app/api_tokens.html"
NEW_TOKEN = "new_api_token"  # session key


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="Name",
        widget=forms.TextInput(attrs={"placeholder": "e.g. notebook server"}),
        error_messages={"required": "Name the token after where it will be used."},
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if self.user.api_tokens.filter(name__iexact=name).exists():
            raise forms.ValidationError(
                f"You already have a token named “{name}”: revoke it or choose another name."
            )
        return name


@login_required
@require_http_methods(["GET", "POST"])
@sensitive_variables("token", "sealed")
def index(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        _record, token = ApiToken.issue(request.user, form.cleaned_data["name"])
        sealed_token = token_crypto.encrypt(token)
        assert sealed_token is not None  # a new token is never empty
        request.session[NEW_TOKEN] = sealed_token.decode()
        return redirect("models_app:api-tokens")
    sealed = request.session.pop(NEW_TOKEN, None)
    context = {
        "form": form,
        "new_token": token_crypto.decrypt(sealed.encode()) if sealed else None,
        "tokens": request.user.api_tokens.all(),  # type: ignore[union-attr]  # signed in (login_required)
    }
    response = render(request, PAGE, context, status=422 if form.errors else 200)
    response["Cache-Control"] = "no-store"  # the new token is on this page once, never in a cache
    return response


@login_required
@require_POST
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(ApiToken, pk=pk, user=request.user)
    record.delete()
    messages.success(request, f"Revoked “{record.name}”: scripts using it are refused from now on.")
    return redirect("models_app:api-tokens")
