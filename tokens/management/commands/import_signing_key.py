"""Import an existing PEM private key as the next signing key (migrations from another issuer, HSM exports)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.exceptions import SigningKeyError
from tokens.keys import ALGORITHMS
from tokens.signing_keys import signing_key_import


class Command(BaseCommand):
    help = "Import an unencrypted PEM private key (RSA >= 2048 bits, EC P-256 or Ed25519) as the next key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="Path of the PEM file.")
        parser.add_argument(
            "--algorithm", choices=ALGORITHMS, help="Signing algorithm (default: from the key type; RSA -> RS256)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        try:
            pem = path.read_bytes()
        except OSError as e:
            raise CommandError(f"Cannot read {path}: {e.strerror}.") from e
        try:
            key = signing_key_import(pem=pem, algorithm=options["algorithm"])
        except SigningKeyError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(self.style.SUCCESS(f"Imported {key.kid} ({key.algorithm}) as the next key."))
