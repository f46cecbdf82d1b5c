"""Evaluate the rules on one timeline from a JSON file and print the findings, touching no database.

    python manage.py check_timeline FILE.json [--as-of YYYY-MM-DD]
                                   [--params PARAMS.json | --center CODE]
    python manage.py check_timeline --all --center CODE [--params PROPOSED.json] [--as-of DATE]

For checking a rule change against reference cases, and for reviewing a patient's course outside
the application. The file format is described in docs/timeline-format.md.

With ``--all`` it previews a rule change on a center's stored patients instead (``--center
registry``: the registry-wide set): the alerts that saving PROPOSED.json as the center's new
version would raise, withdraw or keep, per rule, with the patients' study IDs. It reads the
database and writes nothing (``monitoring.preview``).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from monitoring.params import RuleParams
from monitoring.timeline import Timeline
from monitoring.timeline_json import evaluation_report, load_params_file, load_timeline


def load_params(*, params_file: str | None = None, center: str | None = None) -> RuleParams:
    """The parameters to evaluate with: a parameter file, a center's current stored ones (read
    from the database, which nothing here writes to), or the defaults."""
    if params_file is not None and center is not None:
        raise CommandError("give either --params or --center, not both")
    if center is not None:
        from monitoring.selectors import rule_params_for
        from patients.models import Center

        found = Center.objects.filter(code=center).first()
        if found is None:
            codes = ", ".join(Center.objects.values_list("code", flat=True)) or "none"
            raise CommandError(f"no center with the code {center!r} (known: {codes})")
        return rule_params_for(found)
    if params_file is None:
        return RuleParams()
    try:
        return load_params_file(params_file)
    except OSError as error:
        raise CommandError(
            f"cannot read the parameter file {params_file}: {error.strerror}"
        ) from None
    except (ValueError, TypeError) as error:
        raise CommandError(f"{params_file}: {error}") from None


def _load_timeline(path: str) -> Timeline:
    try:
        return load_timeline(path)
    except OSError as error:
        raise CommandError(f"cannot read the timeline file {path}: {error.strerror}") from None
    except (ValueError, TypeError, ArithmeticError, OverflowError, RecursionError) as error:
        raise CommandError(f"{path}: {error}") from None


def _as_of(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--as-of must be a date YYYY-MM-DD, not {value!r}") from None


class Command(BaseCommand):
    help = "Evaluate the monitoring rules on a timeline JSON file and print the findings as JSON."
    # Pure evaluation: no system checks and no database, so it runs anywhere the code does.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", nargs="?", help="timeline JSON file (docs/timeline-format.md)")
        parser.add_argument(
            "--all",
            action="store_true",
            help="preview --params on every stored patient of --center (reads the database, "
            "writes nothing)",
        )
        parser.add_argument(
            "--as-of",
            dest="as_of",
            help="evaluate as known on this date (YYYY-MM-DD); it is also the 'today' of the "
            "count-due reminder. Default: everything in the file, no reminder.",
        )
        parser.add_argument("--params", dest="params_file", help="rule parameters JSON file")
        parser.add_argument(
            "--center",
            help="use this center's current stored parameters (by center code; reads the database)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = _as_of(options["as_of"])
        if options["all"]:
            self._preview(options, as_of)
            return
        if options["file"] is None:
            raise CommandError("give a timeline file, or --all --center CODE to preview a change")
        params = load_params(params_file=options["params_file"], center=options["center"])
        timeline = _load_timeline(str(Path(options["file"])))
        try:
            report = evaluation_report(timeline, params, as_of=as_of)
        except (ValueError, ArithmeticError, OverflowError, RecursionError) as error:
            # A file that passed every check but still cannot be evaluated: say so, never a
            # traceback.
            raise CommandError(f"{options['file']}: cannot be evaluated: {error}") from None
        self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False))

    def _preview(self, options: dict[str, Any], as_of: date | None) -> None:
        from monitoring.preview import rule_change_preview
        from patients.models import Center

        if options["file"] is not None:
            raise CommandError("--all previews the stored patients: give no timeline file")
        code = options["center"]
        if code is None:
            raise CommandError("--all needs --center CODE (or --center registry)")
        center = None
        if code != "registry":
            center = Center.objects.filter(code=code).first()
            if center is None:
                codes = ", ".join(Center.objects.values_list("code", flat=True)) or "none"
                raise CommandError(f"no center with the code {code!r} (known: {codes})")
        if options["params_file"] is not None:
            params = load_params(params_file=options["params_file"])
        else:  # the current set: a preview of re-evaluating with no change
            from monitoring.selectors import rule_params_for

            params = rule_params_for(center)
        preview = rule_change_preview(center=center, params=params, as_of=as_of)
        self.stdout.write(json.dumps(preview.to_dict(), indent=2, ensure_ascii=False))
