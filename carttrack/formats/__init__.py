"""The display formats of dates and times per language (settings.FORMAT_MODULE_PATH).

Templates name a format ("DATE_FORMAT", "DATETIME_FORMAT", ...) instead of writing one, so each
language shows dates the way its readers write them: "2 Nov 2026" (en-gb, as before),
"2. November 2026" / "02.11.2026" (de), "2026年11月2日" (zh-Hans). Only display: what a form
accepts (the *_INPUT_FORMATS) and what is stored are not changed here. What a module leaves out
comes from Django's own formats for that language.
"""
