"""Plain identifiers (CLINICAL.md section 2): what a study ID may look like.

A study ID is shown everywhere, appears in URLs, e-mail subjects, CSV files and spreadsheets, so
it is kept plain: ASCII letters, digits, "-", "_" and "."; it starts with a letter or a digit (a
leading "=", "+", "-" or "@" turns into a formula in a spreadsheet; a leading "." can make a URL
path segment "." or ".."); no "/", spaces or line breaks; not a word the pages use as a path.
Study IDs are unique without regard to case (a database constraint on their lower-case form).

Pure: `study_id_problems(text)` returns the messages (empty when the ID is fine), so the pages,
the admin, the API and a bulk import share one rule.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

STUDY_ID_MAX_LENGTH = 32
_ALLOWED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Words that are, or may become, fixed paths under /patients/ (compared without regard to case).
RESERVED_STUDY_IDS = frozenset(
    {
        "new",
        "add",
        "edit",
        "delete",
        "history",
        "import",
        "imports",
        "export",
        "search",
        "bulk",
        "upload",
        "worklist",
        "samples",
    }
)
RULE = _(
    "A study ID uses only letters A–Z, digits, “-”, “_” and “.”, starts with a letter or a "
    "digit, and has no spaces, slashes or line breaks (e.g. DEMO-001)."
)


def study_id_problems(study_id: str) -> list[str]:
    """The reasons `study_id` is not a valid study ID, each a sentence; [] when it is valid."""
    if not isinstance(study_id, str) or not study_id:
        return [gettext("Enter a study ID. %(rule)s") % {"rule": RULE}]
    problems = []
    if len(study_id) > STUDY_ID_MAX_LENGTH:
        problems.append(
            gettext("A study ID has at most %(n)s characters.") % {"n": STUDY_ID_MAX_LENGTH}
        )
    if not _ALLOWED.fullmatch(study_id):
        bad = sorted({c for c in study_id if not re.fullmatch(r"[A-Za-z0-9._-]", c)})
        if bad:
            shown = ", ".join(_describe(c) for c in bad[:5])
            problems.append(
                gettext("The study ID contains %(shown)s. %(rule)s")
                % {"shown": shown, "rule": RULE}
            )
        else:
            problems.append(
                gettext("The study ID starts with “%(char)s”. %(rule)s")
                % {"char": study_id[0], "rule": RULE}
            )
    if study_id.lower() in RESERVED_STUDY_IDS:
        problems.append(
            gettext("“%(study_id)s” is a word the pages use as a path; choose another study ID.")
            % {"study_id": study_id}
        )
    return problems


def _describe(char: str) -> str:
    names = {
        " ": gettext("a space"),
        "\n": gettext("a line break"),
        "\r": gettext("a line break"),
        "\t": gettext("a tab"),
        "/": gettext("a slash “/”"),
        "\\": gettext("a backslash “\\”"),
    }
    if char in names:
        return names[char]
    if not char.isprintable():
        return gettext("an invisible character (U+%(code)s)") % {"code": f"{ord(char):04X}"}
    return f"“{char}”"
