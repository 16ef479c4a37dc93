"""The streamed XLSX writer: what goes in comes out of a spreadsheet reader, sheet by sheet."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from typing import Any

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer_server.campaigns.attempts import decode_cursor, encode_cursor
from dialer_server.campaigns.xlsx import XlsxStream
from dialer_server.errors import InvalidInput


def read(data: bytes) -> dict[str, list[list[Any]]]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    return {
        sheet.title: [[c.value for c in row] for row in sheet.iter_rows()]
        for sheet in book.worksheets
    }


def test_rows_go_on_in_a_new_sheet_past_the_limit_each_with_the_header() -> None:
    book = XlsxStream("attempts", ["n", "text"], max_rows=3)
    data = book.rows([(i, f"row {i}") for i in range(5)]) + book.close()
    assert read(data) == {
        "attempts": [["n", "text"], [0, "row 0"], [1, "row 1"]],
        "attempts-2": [["n", "text"], [2, "row 2"], [3, "row 3"]],
        "attempts-3": [["n", "text"], [4, "row 4"]],
    }
    assert book.sheets == 3 and book.rows_written == 5


def test_an_empty_export_is_a_workbook_with_its_header() -> None:
    book = XlsxStream("results", ["a", "b"])
    assert read(book.close()) == {"results": [["a", "b"]]}


def test_bytes_come_out_as_rows_go_in() -> None:
    book = XlsxStream("results", ["text"])
    first = book.rows([("x" * 100,)] * 20_000)
    assert len(first) > 0  # not held back until the end
    assert read(first + book.rows([("y",)]) + book.close())["results"][-1] == ["y"]


text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=30
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), text),
            st.one_of(st.none(), st.integers(-(10**14), 10**14)),
            st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False)),
        ),
        max_size=20,
    )
)
def test_values_come_back_as_written(rows: list[tuple[Any, Any, Any]]) -> None:
    book = XlsxStream("results", ["text", "int", "other"])
    got = read(book.rows(rows) + book.close())["results"][1:]
    assert len(got) == len(rows)
    for written, back in zip(rows, got, strict=True):
        want_text = written[0]
        if want_text is not None:
            # XML keeps no control characters; a spreadsheet reads no empty text.
            want_text = "".join(c for c in want_text if c >= " " or c in "\t\n") or None
        assert back[0] == want_text
        assert back[1] == written[1]
        if isinstance(written[2], float):
            assert back[2] == pytest.approx(written[2], rel=1e-15)
        else:
            assert back[2] == written[2]


def test_a_formula_stays_text_and_big_numbers_stay_exact() -> None:
    book = XlsxStream("results", ["a", "b"])
    got = read(book.rows([('=HYPERLINK("x")', 12345678901234567)]) + book.close())
    assert got["results"][1] == ['=HYPERLINK("x")', "12345678901234567"]


@given(st.datetimes(timezones=st.just(UTC)), st.uuids())
def test_a_cursor_names_the_attempt_it_follows(at: datetime, attempt: uuid.UUID) -> None:
    assert decode_cursor(encode_cursor(at, attempt)) == (at, attempt)


@pytest.mark.parametrize(
    "bad", ["", "!!!", "bm90IGEgY3Vyc29y", "MTIzOnh5eg", "OTk5OTk5OTk5OTk5OTk5OTk5OTk5"]
)
def test_a_made_up_cursor_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        decode_cursor(bad)
