"""Who added a record, and who may therefore change it.

A studio is shared: everyone signed in reads every model, dataset, extraction and template,
since a team works from the same downloads and results. Changing one (rename, cancel, retry,
delete, edit) is for its owner and for staff only. With MISTUDIO_PRIVATE=1 each user sees only
their own records (staff still see all). A record without an owner (made from the terminal,
or before owners were recorded) belongs to the operator: staff change it, and in a private
studio only staff see it."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class OwnedQuerySet(models.QuerySet):
    def visible_to(self, user) -> OwnedQuerySet:
        if not user.is_authenticated:
            return self.none()
        if settings.PRIVATE and not user.is_staff:
            return self.filter(owner_id=user.pk)
        return self

    def alike_for(self, user) -> OwnedQuerySet:
        """The records a new record of `user` must not repeat (a name, a download): everyone's
        in a shared studio; in a private one each user's own, so that a refusal never tells of
        another user's record (`user` None, the terminal: the records without an owner)."""
        if not settings.PRIVATE:
            return self
        return self.filter(owner_id=user.pk if user is not None and user.is_authenticated else None)


# A manager class with a name, rather than `OwnedQuerySet.as_manager()` on the model, so that
# django-stubs follows it into every related manager (model.extractions.visible_to(...)). mypy
# itself cannot check a base class made by a call (the ignore); the plugin resolves it.
class OwnedManager(models.Manager.from_queryset(OwnedQuerySet)):  # type: ignore[misc]
    pass


class Owned(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who added it: they and staff may change it",
    )

    objects = OwnedManager()

    class Meta:
        abstract = True

    def may_change(self, user) -> bool:
        return bool(user.is_authenticated and (user.is_staff or self.owner_id == user.pk))

    def change_refusal(self, user) -> str | None:
        """None when `user` may change it; else the message they read."""
        if self.may_change(user):
            return None
        owner = type(self).objects.filter(pk=self.pk).values_list("owner__username", flat=True).first()
        if owner:
            return f"Only {owner}, who added it, and staff can change it."
        return "Only staff can change it: it has no owner."

    def may_see(self, user) -> bool:
        return bool(
            user.is_authenticated and (not settings.PRIVATE or user.is_staff or self.owner_id == user.pk)
        )
