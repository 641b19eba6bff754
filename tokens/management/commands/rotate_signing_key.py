"""Rotate the signing keys without logging anyone out.

`next` becomes `current`, `current` becomes `previous` (still verifying until
its tokens expire) and a fresh `next` is published. Run it on a schedule;
`prune_signing_keys` later retires the old `previous`.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.exceptions import SigningKeyError
from tokens.keys import ALGORITHMS
from tokens.signing_keys import signing_key_rotate

from ._keys_output import key_as_dict


class Command(BaseCommand):
    help = "Promote the next signing key to current, keep the old one verifying, and publish a new next key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--algorithm", choices=ALGORITHMS, help="Algorithm of the new next key (default: JWT_ALGORITHM)."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Promote even if the next key was published less than JWT_JWKS_MAX_AGE ago.",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = signing_key_rotate(algorithm=options["algorithm"], force=options["force"])
        except SigningKeyError as e:
            raise CommandError(str(e)) from e
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "current": key_as_dict(result.current),
                        "previous": key_as_dict(result.previous) if result.previous else None,
                        "next": key_as_dict(result.next),
                    },
                    indent=2,
                )
            )
            return
        self.stdout.write(self.style.SUCCESS(f"current:  {result.current.kid} ({result.current.algorithm})"))
        if result.previous:
            self.stdout.write(f"previous: {result.previous.kid} (verifies until its tokens expire)")
        self.stdout.write(f"next:     {result.next.kid} ({result.next.algorithm}, published now)")
