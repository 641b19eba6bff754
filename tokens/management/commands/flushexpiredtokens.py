"""Delete the rows of expired refresh tokens, in batches.

Same name as simplejwt's command, which operators already know. The table
grows by one row per refresh; expired rows serve nothing (an expired token
is refused before its row is read, and a token without a row is refused
too), so deleting them never un-blacklists anything. Each batch is one short
transaction, so a million rows never hold a long lock.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.cleanup import DEFAULT_BATCH_SIZE, outstanding_tokens_flush_expired


class Command(BaseCommand):
    help = "Delete expired outstanding (refresh) token rows in batches of short transactions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows deleted per transaction (default {DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count the expired rows; delete nothing.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        verbosity = options["verbosity"]

        def progress(deleted: int) -> None:
            if verbosity >= 2 and not options["json"]:
                self.stdout.write(f"  deleted {deleted} so far")

        result = outstanding_tokens_flush_expired(
            batch_size=options["batch_size"], dry_run=options["dry_run"], progress=progress
        )
        if options["json"]:
            self.stdout.write(
                json.dumps({"expired_tokens": result.deleted, "batches": result.batches, "dry_run": result.dry_run})
            )
        elif verbosity >= 1:
            if result.dry_run:
                self.stdout.write(f"{result.deleted} expired token rows would be deleted (dry run).")
            else:
                self.stdout.write(
                    self.style.SUCCESS(f"Deleted {result.deleted} expired token rows in {result.batches} batches.")
                )
