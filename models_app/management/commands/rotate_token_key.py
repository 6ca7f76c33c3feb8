"""manage.py rotate_token_key: re-encrypt the stored access tokens with the first of the token
keys (MISTUDIO_TOKEN_KEY="new,old"), after which the old key can be removed; --new-key prints a
fresh key to put first."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken
from django.core.management.base import BaseCommand

from models_app import token_crypto
from models_app.models import Dataset, LanguageModel


class Command(BaseCommand):
    help = "Re-encrypt stored access tokens with the first key of MISTUDIO_TOKEN_KEY."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--new-key", action="store_true", help="print a new key and change nothing")

    def handle(self, *args, **options) -> None:
        if options["new_key"]:
            self.stdout.write(Fernet.generate_key().decode())
            return
        done = unreadable = 0
        for record_cls in (LanguageModel, Dataset):
            for pk, blob in record_cls.objects.exclude(encrypted_token=None).values_list(
                "pk", "encrypted_token"
            ):
                try:
                    record_cls.objects.filter(pk=pk).update(encrypted_token=token_crypto.rotate(blob))
                    done += 1
                except InvalidToken:
                    unreadable += 1
        self.stdout.write(
            f"Re-encrypted {done} token(s) with the first key"
            + (
                f"; {unreadable} could not be read with any key (their jobs will run without)."
                if unreadable
                else "."
            )
        )
