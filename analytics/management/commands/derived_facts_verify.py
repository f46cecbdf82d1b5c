"""``python manage.py derived_facts_verify [--fix]``: rebuild every patient's stored analysis row
(`analytics.derived`) from the raw records, in batches, and print every difference (study ID,
column, stored, rebuilt). Exits with status 1 when any row differs; ``--fix`` stores the rebuilt
rows. Also run nightly (`analytics.tasks.derived_facts_verify_nightly`).

A difference means a write reached the records without passing the one write path (or a
setting the rows depend on changed without rebuilding them): the stored rows, and the snapshots
read from them, were wrong until fixed.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from analytics.derived import BATCH, derived_facts_verify


class Command(BaseCommand):
    help = "Rebuild the stored analysis rows from the raw records and report any difference."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fix", action="store_true", help="Store the rebuilt rows.")
        parser.add_argument("--batch", type=int, default=BATCH, help="Patients per batch.")

    def handle(self, *args, fix: bool = False, batch: int = BATCH, **options) -> None:
        differences = derived_facts_verify(fix=fix, batch=batch)
        if not differences:
            self.stdout.write("Every stored analysis row equals its rebuild from the records.")
            return
        self.stdout.write("study_id\tcolumn\tstored\trebuilt")
        for d in differences:
            self.stdout.write(f"{d.study_id}\t{d.column}\t{d.stored!r}\t{d.rebuilt!r}")
        patients = len({d.study_id for d in differences})
        done = "rewritten" if fix else "not fixed (run with --fix)"
        self.stderr.write(
            f"{len(differences)} difference(s) in {patients} patient(s)' stored rows: {done}."
        )
        raise SystemExit(1)
