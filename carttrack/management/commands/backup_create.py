"""python manage.py backup_create FILE: dump the whole database (pg_dump, or SQLite's backup)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from carttrack.backups import BackupError, backup_create


class Command(BaseCommand):
    help = "Dump the whole database to FILE (never overwrites). Check it with backup_verify."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        try:
            report = backup_create(file)
        except BackupError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Backup written: {report.path} ({report.size:,} bytes)")
        self.stdout.write(f"SHA-256: {report.sha256}")
        self.stdout.write(f"Check that it restores: python manage.py backup_verify {report.path}")
