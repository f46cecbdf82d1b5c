"""Write a stored patient's course as timeline JSON (docs/timeline-format.md).

    python manage.py export_timeline STUDY_ID [--output FILE.json]

`check_timeline` on the file (with `--center CODE` and `--as-of` the day of evaluation) gives the
patient's stored findings. The file holds the pseudonymous study ID only, never a name or MRN.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from monitoring.timeline_export import patient_timeline_document
from patients.models import Patient


class Command(BaseCommand):
    help = "Write a stored patient's course as timeline JSON (the check_timeline format)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("study_id")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        patient = (
            Patient.objects.select_related("center").filter(study_id=options["study_id"]).first()
        )
        if patient is None:
            raise CommandError(f"no patient with the study ID {options['study_id']!r}")
        text = json.dumps(patient_timeline_document(patient), indent=2, ensure_ascii=False)
        if options["output"]:
            Path(options["output"]).write_text(text + "\n", encoding="utf-8")
        else:
            self.stdout.write(text)
