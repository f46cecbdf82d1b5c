"""The translation catalogues are complete (issue 23): this fails when a catalogue misses a message.

bin/messages (makemessages, the canonical way) runs in a temporary copy of the tree, never in the
repository; then, for every shipped language and every catalogue (the root templates' locale/,
carttrack/locale and each app's own): every message of the source is in the committed .po and
translated (none untranslated, none fuzzy), the placeholders of each translation are those of
its message, and the committed .mo says what the .po says.
"""

from __future__ import annotations

import ast
import gettext
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ["de", "zh_Hans"]
APPS = re.search(r"^APPS=\(([^)]*)\)", (ROOT / "bin" / "messages").read_text(), re.M).group(1)
CATALOGUES = ["locale", "carttrack/locale", *(f"{app}/locale" for app in APPS.split())]
# JavaScript texts come translated from the templates (data attributes): no djangojs domain.
DOMAINS = ["django"]
COPY_IGNORED = shutil.ignore_patterns(
    ".venv",
    ".git",
    "node_modules",
    "staticfiles",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    "media",
    "*.sqlite3",
    "*.png",
    "*.jpg",
    "*.xlsx",
)

PYTHON_FORMAT = re.compile(r"%(?:\([^)]+\))?[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa%]")
BRACE_FORMAT = re.compile(r"\{[^{}]*\}")


def read_po(path: Path) -> list[dict]:
    """The entries of a .po file (header skipped): msgctxt, msgid, msgid_plural, msgstr, flags."""
    entries, entry, key = [], None, None

    def finish():
        if entry is not None and entry["msgid"]:
            entries.append(entry)

    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        line = line.strip()
        if line.startswith("#~"):
            continue
        if not line:
            finish()
            entry, key = None, None
            continue
        if entry is None:
            entry = {
                "flags": set(),
                "msgctxt": None,
                "msgid": "",
                "msgid_plural": None,
                "msgstr": {},
            }
        if line.startswith("#,"):
            entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        else:
            match = re.match(r"(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(\".*\")$", line)
            if match:
                word, index, text = match.groups()
                value = _unquote(text)
                if word.startswith("msgstr"):
                    key = ("msgstr", int(index or 0))
                    entry["msgstr"][key[1]] = value
                else:
                    key = (word, None)
                    entry[word] = value
            elif line.startswith('"') and key is not None:
                if key[0] == "msgstr":
                    entry["msgstr"][key[1]] += _unquote(line)
                else:
                    entry[key[0]] += _unquote(line)
    return entries


def _unquote(text: str) -> str:
    return ast.literal_eval(text)


def _name(entry: dict) -> str:
    return (entry["msgctxt"] + "\x04" if entry["msgctxt"] else "") + entry["msgid"]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    """A copy of the tree in which bin/messages has regenerated every .po from the source."""
    if shutil.which("xgettext") is None or shutil.which("msgfmt") is None:
        pytest.fail("gettext (xgettext, msgfmt) is needed: apt-get install gettext (.ci/run does)")
    copy = tmp_path_factory.mktemp("tree") / "carttrack"
    shutil.copytree(ROOT, copy, ignore=COPY_IGNORED, symlinks=True)
    run = subprocess.run(
        ["bash", "bin/messages", "--no-compile"],
        cwd=copy,
        env={
            "PATH": "/usr/bin:/bin:/usr/local/bin",
            "PYTHON": sys.executable,
            "SECRET_KEY": "catalogue-check",
            "DATABASE_URL": "postgres://x@127.0.0.1:1/x",
            "HOME": str(copy),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return copy


def _catalogue_params():
    return [
        pytest.param(catalogue, language, domain, id=f"{catalogue}-{language}-{domain}")
        for catalogue in CATALOGUES
        for language in LANGUAGES
        for domain in DOMAINS
    ]


@pytest.mark.parametrize(("catalogue", "language", "domain"), _catalogue_params())
def test_every_message_of_the_source_is_translated(regenerated, catalogue, language, domain):
    relative = Path(catalogue) / language / "LC_MESSAGES" / f"{domain}.po"
    generated = regenerated / relative
    committed = ROOT / relative
    if not generated.exists():
        assert not committed.exists() or not read_po(committed), (
            f"{relative}: committed, but the source has no message for it"
        )
        return
    assert committed.exists(), f"{relative} is missing: run bin/messages and translate it"
    known = {_name(e): e for e in read_po(committed)}
    missing = [e["msgid"] for e in read_po(generated) if _name(e) not in known]
    assert not missing, f"{relative}: {len(missing)} messages not in the catalogue: {missing[:10]}"


@pytest.mark.parametrize(("catalogue", "language", "domain"), _catalogue_params())
def test_no_entry_is_untranslated_or_fuzzy_and_placeholders_match(catalogue, language, domain):
    relative = Path(catalogue) / language / "LC_MESSAGES" / f"{domain}.po"
    committed = ROOT / relative
    if not committed.exists():
        pytest.skip(f"no {relative} (the source check above says whether one is needed)")
    problems = []
    for entry in read_po(committed):
        if "fuzzy" in entry["flags"]:
            problems.append(f"fuzzy: {entry['msgid']!r}")
        if not entry["msgstr"] or not all(entry["msgstr"].values()):
            problems.append(f"untranslated: {entry['msgid']!r}")
            continue
        for flag, pattern in (
            ("python-format", PYTHON_FORMAT),
            ("python-brace-format", BRACE_FORMAT),
        ):
            if flag not in entry["flags"]:
                continue
            wanted = set(pattern.findall(entry["msgid"]))
            if entry["msgid_plural"] is not None:
                wanted |= set(pattern.findall(entry["msgid_plural"]))
            for translation in entry["msgstr"].values():
                found = set(pattern.findall(translation))
                # A plural form may leave the count out ("einen Code"), never add or rename one.
                if found != wanted and not (entry["msgid_plural"] and found < wanted):
                    problems.append(
                        f"placeholders {sorted(found)} instead of {sorted(wanted)}: "
                        f"{entry['msgid']!r}"
                    )
    assert not problems, f"{relative}:\n" + "\n".join(problems[:20])


@pytest.mark.parametrize(("catalogue", "language", "domain"), _catalogue_params())
def test_the_committed_mo_is_compiled_from_the_po(tmp_path, catalogue, language, domain):
    relative = Path(catalogue) / language / "LC_MESSAGES" / f"{domain}.po"
    po = ROOT / relative
    if not po.exists():
        pytest.skip(f"no {relative}")
    mo = po.with_suffix(".mo")
    assert mo.exists(), f"{mo.relative_to(ROOT)} is missing: run bin/messages and commit it"
    fresh = tmp_path / "fresh.mo"
    subprocess.run(["msgfmt", "--check", "-o", str(fresh), str(po)], check=True)
    with mo.open("rb") as committed_file, fresh.open("rb") as fresh_file:
        committed = gettext.GNUTranslations(committed_file)._catalog
        expected = gettext.GNUTranslations(fresh_file)._catalog
    assert committed == expected, f"{mo.relative_to(ROOT)} is out of date: run bin/messages"
