"""The results export's guard against spreadsheet formulas in CRM text (pure code)."""

from __future__ import annotations

import csv
import io
import unicodedata
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dialer_server.campaigns.export import COLUMNS, csv_rows, formula_safe

# What Excel, LibreOffice and Google Sheets start a formula (or a DDE call) with, in
# ASCII and in the full-width and small forms a Japanese or Chinese input method types.
STARTERS = "=+-@|\uff1d\uff0b\uff0d\uff20\uff5c\ufe66\ufe62\ufe63\ufe6b\u2212"
# What a spreadsheet skips before it looks for one: blanks of every kind, zero-width
# and direction marks, the byte order mark, control characters.
SKIPPED = " \t\r\n\u00a0\u2002\u3000\u200b\u200c\u200d\u2060\ufeff\u200e\u202e\u00ad\x0b"


def _cells(**values: Any) -> dict[str, str]:
    row = dict.fromkeys(COLUMNS)
    row.update(values)
    text = csv_rows([row]).decode()
    return next(csv.DictReader(io.StringIO(text), fieldnames=list(COLUMNS)))


def test_a_formula_in_crm_text_is_neutralised_even_after_blanks_and_invisible_marks() -> None:
    for starter in STARTERS:
        for lead in ("", *SKIPPED, " \u200b\u3000"):
            value = f'{lead}{starter}HYPERLINK("http://x")'
            for column in ("external_id", "param1", "param12"):
                assert _cells(**{column: value})[column] == "'" + value, (column, value)


def test_text_that_is_no_formula_is_left_as_it_is() -> None:
    for value in ("Alice", "a=b", "1-2", "  Bob", "\u200bx", "'quoted", "Zoë", "", "café=1"):
        assert _cells(param1=value)["param1"] == value
    # Our own columns are not CRM text: an E.164 number keeps its +.
    assert _cells(phone1="+12025550101")["phone1"] == "+12025550101"


def _first_seen(text: str) -> str | None:
    for char in text:
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp"):
            continue
        return char
    return None


def _needs_guard(text: str) -> bool:
    if text[:1] in ("\t", "\r", "\n"):
        return True
    first = _first_seen(text)
    return first is not None and unicodedata.normalize("NFKC", first)[:1] in "=+-@|\u2212"


@given(st.text(max_size=12))
def test_exactly_the_cells_a_spreadsheet_would_run_get_a_leading_quote(text: str) -> None:
    assert formula_safe(text) == ("'" + text if _needs_guard(text) else text)
