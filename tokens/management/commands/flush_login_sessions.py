"""Delete login sessions that were revoked, or expired, longer ago than a retention period.

Revoked and expired sessions stay for a while so that staff can see who was
signed in where; after the retention period they only weigh on the table.
Their refresh-token rows go with them (a token without a row is refused);
run `flushexpiredtokens` first and most of those are gone already.
The audit trail (AuthEvent) keeps the record of each sign-in and revocation.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.cleanup import DEFAULT_RETENTION_DAYS, DEFAULT_SESSION_BATCH_SIZE, login_sessions_flush


class Command(BaseCommand):
    help = "Delete login sessions revoked or expired more than --days days ago, in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=DEFAULT_RETENTION_DAYS,
            help=f"Retention period in days (default {DEFAULT_RETENTION_DAYS}).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_SESSION_BATCH_SIZE,
            help=f"Sessions deleted per transaction (default {DEFAULT_SESSION_BATCH_SIZE}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count the sessions; delete nothing.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 0:
            raise CommandError("--days cannot be negative.")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        verbosity = options["verbosity"]

        def progress(deleted: int) -> None:
            if verbosity >= 2 and not options["json"]:
                self.stdout.write(f"  deleted {deleted} so far")

        result = login_sessions_flush(
            days=options["days"], batch_size=options["batch_size"], dry_run=options["dry_run"], progress=progress
        )
        if options["json"]:
            self.stdout.write(
                json.dumps({"login_sessions": result.deleted, "batches": result.batches, "dry_run": result.dry_run})
            )
        elif verbosity >= 1:
            if result.dry_run:
                self.stdout.write(f"{result.deleted} finished login sessions would be deleted (dry run).")
            else:
                self.stdout.write(
                    self.style.SUCCESS(f"Deleted {result.deleted} finished login sessions in {result.batches} batches.")
                )
