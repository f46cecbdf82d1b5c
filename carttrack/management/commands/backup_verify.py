"""python manage.py backup_verify FILE: restore a backup into a scratch database and report."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from carttrack.backups import BackupError, backup_verify

# The tables a reader checks first; every table is counted.
CLINICAL = [
    "patients_patient",
    "patients_infusion",
    "patients_labresult",
    "patients_responseassessment",
    "patients_clinicalevent",
    "monitoring_alert",
    "patients_historicallabresult",
    "audit_accessevent",
]


class Command(BaseCommand):
    help = (
        "Restore FILE into a scratch database (dropped afterwards; SQLite: read in place) and "
        "report its rows, missing migrations and append-only triggers. Exit 1 if incomplete."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--all-tables", action="store_true", help="list every table")

    def handle(self, *args, file: Path, all_tables: bool, **options):
        try:
            report = backup_verify(file)
        except BackupError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Backup {report.path} ({report.size:,} bytes, SHA-256 {report.sha256})")
        self.stdout.write(f"{len(report.rows)} tables restored, {sum(report.rows.values()):,} rows")
        shown = sorted(report.rows) if all_tables else [t for t in CLINICAL if t in report.rows]
        width = max((len(t) for t in shown), default=10)
        for table in shown:
            self.stdout.write(f"  {table:<{width}}  {report.rows[table]:>10,}")
        if report.protected_tables:
            self.stdout.write(
                f"Append-only tables (triggers restored): {len(report.protected_tables)}"
            )
        if report.missing_migrations:
            raise CommandError(
                "The backup lacks migrations this code expects: "
                + ", ".join(report.missing_migrations)
                + ". It was made by an older release: restore it, then run migrate."
            )
        if report.missing_triggers:
            raise CommandError(
                "These tables came back without their append-only trigger: "
                + ", ".join(report.missing_triggers)
                + ". Restore with pg_restore from a custom-format dump (backup_create) and "
                "do not skip triggers; then check again."
            )
        self.stdout.write(self.style.SUCCESS("The backup restores completely."))
