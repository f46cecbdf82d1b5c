from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics.services import snapshot_compute
from demo.load import DEMO_PASSWORD, demo_cohort_load


class Command(BaseCommand):
    help = "Load the synthetic demo cohort (55 patients, marked synthetic) and the demo users."

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Delete the synthetic patients first and load them again.",
        )
        parser.add_argument(
            "--today",
            help="The loading day the cohort is dated from (YYYY-MM-DD; default: today).",
        )
        parser.add_argument(
            "--no-live",
            action="store_true",
            help="Only the 55 patients of the reference cohort, no patients in their first weeks.",
        )
        parser.add_argument(
            "--quiet-logins", action="store_true", help="Do not print the demo logins."
        )

    def handle(self, *args, reset, quiet_logins, today=None, no_live=False, **options):
        try:
            day = date.fromisoformat(today) if today else timezone.localdate()
        except ValueError:
            raise CommandError("--today must be a date written YYYY-MM-DD") from None
        if day > timezone.localdate():
            raise CommandError("--today cannot be after today: no record may lie in the future")
        counts = demo_cohort_load(today=day, reset=reset, live=not no_live)
        if counts["patients"]:
            snapshot = snapshot_compute(options={})  # the dashboard has numbers from the start
            self.stdout.write(f"Computed the survival dashboard ({snapshot.duration_ms} ms).")
            self.stdout.write(
                self.style.SUCCESS(
                    f"Loaded {counts['patients']} synthetic patients with {counts['labs']} lab "
                    f"results, dated up to {day:%Y-%m-%d}, and {counts['live']} patients in "
                    "their first weeks after infusion."
                )
            )
        else:
            self.stdout.write(
                "The synthetic demo cohort is already loaded (use --reset to load it again)."
            )
        if not quiet_logins:
            self.stdout.write(f"\nDemo logins (password for all: {DEMO_PASSWORD}):")
            for username, role in [
                ("dr.alpha", "hematologist, Center Alpha"),
                ("dr.beta", "hematologist, Center Beta"),
                ("registry", "registry staff, every center, no identifiers"),
                ("admin", "administrator, /admin/"),
            ]:
                self.stdout.write(f"  {username:<10} {role}")
