"""Create the first admin user when there is none (used by `make run`)."""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create an 'admin' superuser if no superuser exists (MISTUDIO_ADMIN_PASSWORD or generated)."

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        username = os.environ.get("MISTUDIO_ADMIN_USER", "admin")
        password = os.environ.get("MISTUDIO_ADMIN_PASSWORD")
        generated = not password
        password = password or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created admin user '{username}' with password: {password}\n"
                    "It is shown only this once; change it in the admin."
                )
            )
        else:
            self.stdout.write(f"Created admin user '{username}' (password from MISTUDIO_ADMIN_PASSWORD).")
