"""Retire `previous` signing keys once every token they signed has expired."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tokens.signing_keys import signing_keys_prune


class Command(BaseCommand):
    help = "Retire previous signing keys whose tokens have all expired (they leave the JWKS)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Show what would be retired; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        pruned = signing_keys_prune(dry_run=options["dry_run"])
        verb = "Would retire" if options["dry_run"] else "Retired"
        for key in pruned:
            self.stdout.write(f"{verb} {key.kid}")
        if options["verbosity"] >= 1:
            self.stdout.write(f"{verb} {len(pruned)} key(s).")
