"""Reading the rendered pages: the messages shown beside a field, and table rows."""

import re
from html import unescape

_ERROR = re.compile(r'<p class="error">(.*?)</p>', re.S)


def field_errors(page: str, field_name: str) -> list[str]:
    """Messages shown beside one field of a record form (its `div.field`)."""
    for block in re.findall(r'<div class="field[^"]*">(.*?)</div>', page, re.S):
        if f'name="{field_name}"' in block:
            return [unescape(m).strip() for m in _ERROR.findall(block)]
    raise AssertionError(f"no field {field_name!r} on the page")


def sample_row_errors(page: str, analyte: str) -> list[str]:
    """Messages shown in one analyte's row of the sample form."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S):
        if f'name="{analyte}-value"' in row:
            return [unescape(m).strip() for m in _ERROR.findall(row)]
    raise AssertionError(f"no row for {analyte!r} on the page")


def error_summary(page: str) -> list[str]:
    """Every line of the error summary at the top of the form (templates/_form_errors.html)."""
    box = re.search(r'<div class="error-summary"[^>]*>(.*?)</div>', page, re.S)
    if not box:
        return []
    return [
        " ".join(unescape(re.sub(r"<[^>]+>", " ", m)).split())
        for m in re.findall(r"<li>(.*?)</li>", box.group(1), re.S)
    ]


def form_errors(page: str) -> list[str]:
    """Messages shown above the form not tied to one field: the summary's lines without a link
    to a field."""
    box = re.search(r'<div class="error-summary"[^>]*>(.*?)</div>', page, re.S)
    if not box:
        return []
    return [
        unescape(m).strip()
        for m in re.findall(r"<li>(.*?)</li>", box.group(1), re.S)
        if "<a " not in m
    ]


def table_rows(page: str, testid: str) -> list[list[str]]:
    """The text of each body row's cells of the table with `data-testid`."""
    table = re.search(rf'<table[^>]*data-testid="{testid}"[^>]*>(.*?)</table>', page, re.S)
    assert table, f"no table {testid!r} on the page"
    body = re.search(r"<tbody>(.*?)</tbody>", table.group(1), re.S).group(1)
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        rows.append([" ".join(unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in cells])
    return rows


def input_value(page: str, name: str) -> str | None:
    tag = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', page)
    assert tag, f"no input {name!r} on the page"
    value = re.search(r'value="([^"]*)"', tag.group(0))
    return unescape(value.group(1)) if value else None
