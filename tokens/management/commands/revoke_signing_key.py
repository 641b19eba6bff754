"""Revoke a compromised signing key: it leaves the JWKS and every token it signed fails at once.

If it was the current key, the next key takes over immediately and a new
next key is made, so the server keeps signing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.exceptions import SigningKeyError
from tokens.signing_keys import signing_key_revoke


class Command(BaseCommand):
    help = "Revoke a signing key by kid; tokens it signed stop working at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kid", help="The key id, as `list_signing_keys` shows it.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            key = signing_key_revoke(kid=options["kid"])
        except SigningKeyError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(self.style.SUCCESS(f"Revoked {key.kid}."))
