"""Revoke a compromised signing key: it leaves the JWKS and every token it signed fails at once.

If it was the current key, the next key takes over immediately and a new
next key is made, so the server keeps signing.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.exceptions import SigningKeyError
from tokens.signing_keys import signing_key_revoke

# An RFC 7638 SHA-256 thumbprint: 43 base64url characters, which may begin
# with "-" (about one key in 64).
THUMBPRINT = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _kid_as_positional(args: list[str]) -> list[str]:
    """Put `--` before a kid that starts with "-", so argparse does not read it as an option."""
    if "--" in args:
        return args
    for i, arg in enumerate(args):
        if arg.startswith("-") and THUMBPRINT.match(arg):
            return [*args[:i], "--", *args[i:]]
    return args


class Command(BaseCommand):
    help = "Revoke a signing key by kid; tokens it signed stop working at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kid", help="The key id, as `list_signing_keys` shows it.")
        parse_args = parser.parse_args

        def parse_kid_args(args: Any = None, namespace: Any = None) -> Any:
            return parse_args(_kid_as_positional(list(args)) if args is not None else None, namespace)

        parser.parse_args = parse_kid_args  # type: ignore[method-assign]

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            key = signing_key_revoke(kid=options["kid"])
        except SigningKeyError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(self.style.SUCCESS(f"Revoked {key.kid}."))
