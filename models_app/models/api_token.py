"""Personal tokens for scripts and notebooks that call /api/v1/ (models_app/api)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "mist_"
LAST_USED_PRECISION = timedelta(minutes=1)  # one write a minute, not one per request


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(models.Model):
    """A user's key for the JSON API. The token itself is shown once, when it is made; only its
    SHA-256 digest is stored (it has 256 random bits, so a plain digest is as hard to reverse as
    the token is to guess), so a copy of the database signs nobody in. Deleting it revokes it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What it is for, e.g. the notebook server")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(
        max_length=16, editable=False, help_text="Its first characters, to tell tokens apart"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @classmethod
    def issue(cls, user, name: str) -> tuple[ApiToken, str]:
        """A new token for `user`: the record, and the token to show once."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = cls.objects.create(
            user=user, name=name, digest=digest_of(token), hint=token[: len(TOKEN_PREFIX) + 6]
        )
        return record, token

    @classmethod
    def user_for(cls, token: str):
        """The active user a presented token belongs to, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        record = cls.objects.select_related("user").filter(digest=digest_of(token)).first()
        if record is None or not record.user.is_active:
            return None
        now = timezone.now()
        if record.last_used_at is None or now - record.last_used_at > LAST_USED_PRECISION:
            cls.objects.filter(pk=record.pk).update(last_used_at=now)
        return record.user
