"""The texts of stored figures, in the reader's language when they are served.

A dashboard snapshot is computed once (by a worker, in no one's language) and its plotly figures
are stored as JSON. Each text a figure shows (title, axis titles, legend names, hover templates,
the number-at-risk row's labels, the median or p-value note) is drawn in English and recorded
beside the figure, under ``TEXTS_KEY``, as its message and parameters; ``localized`` swaps every
recorded text for its translation in the active language when the figure is served. The numbers
inside a text are parameters, formatted once when the figure is built: they are never translated
or recomputed. A message names its parameters as ``{name}`` (filled after translation); plotly's
own ``%{x}`` placeholders are left for plotly.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext

#: The figure's key that holds its recorded texts (plotly.js reads only `data` and `layout`).
TEXTS_KEY = "texts"


class Text(str):
    """A text as drawn in English, carrying the message and parameters it was drawn from
    (a copy made by plotly is a plain text again: only the English is needed there)."""

    record: list | None = None


def _text(msgid: str, params: dict[str, Any]) -> Text:
    stored = {key: _stored(value) for key, value in params.items()}
    text = Text(_fill(msgid, stored, translate=False))
    text.record = [msgid, stored]
    return text


def _stored(value: Any) -> Any:
    """A parameter as stored: a text keeps its message (translated too), anything else is
    neutral (a number already formatted, a code)."""
    if isinstance(value, Text) and value.record is not None:
        return {"text": value.record}
    return str(value)


def _fill(msgid: str, params: dict[str, Any], *, translate: bool) -> str:
    out = gettext(msgid) if translate else msgid
    for key, value in params.items():
        if isinstance(value, dict) and "text" in value:
            inner, inner_params = value["text"]
            value = _fill(inner, inner_params, translate=translate)
        out = out.replace("{" + key + "}", value)
    return out


class FigureTexts:
    """Collects the texts of one figure as it is built: ``texts(gettext_noop("..."), n=...)``
    returns the English text and remembers how to translate it."""

    def __init__(self) -> None:
        self.records: dict[str, list] = {}

    def __call__(self, msgid: str, **params: Any) -> Text:
        text = _text(msgid, params)
        self.records[str(text)] = text.record
        return text

    def hover(self, msgid: str, **params: Any) -> str:
        """A hover template: the text, then plotly's ``<extra></extra>`` (no trace name box)."""
        text = _text(msgid, params)
        hover = f"{text}<extra></extra>"
        self.records[hover] = [*text.record, "<extra></extra>"]
        return hover

    def attach(self, figure: dict[str, Any]) -> dict[str, Any]:
        figure[TEXTS_KEY] = dict(self.records)
        return figure


def localized(figure: dict[str, Any]) -> dict[str, Any]:
    """The figure as plotly draws it, its recorded texts in the active language (a figure
    stored before texts were recorded is returned as it is, in English)."""
    records = figure.get(TEXTS_KEY) or {}
    shown = {key: value for key, value in figure.items() if key != TEXTS_KEY}
    if not records:
        return shown
    swap = {
        english: _fill(record[0], record[1], translate=True) + "".join(record[2:])
        for english, record in records.items()
    }

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return swap.get(node, node)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        return node

    return walk(shown)
