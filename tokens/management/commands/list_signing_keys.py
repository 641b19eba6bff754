"""List the signing keys with their state and dates (never private material).

Operators read it before and after a rotation; `--json` is for scripts.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tokens.selectors import signing_keys_all

from ._keys_output import key_as_dict, key_as_line


class Command(BaseCommand):
    help = "List signing keys: kid, algorithm, state and dates. Private keys are never shown."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print a JSON array instead of a table.")

    def handle(self, *args: Any, **options: Any) -> None:
        keys = list(signing_keys_all())
        if options["json"]:
            self.stdout.write(json.dumps([key_as_dict(k) for k in keys], indent=2))
            return
        if not keys:
            self.stdout.write("No signing keys yet; one is made on first use or by `migrate`.")
            return
        for key in keys:
            self.stdout.write(key_as_line(key))
