"""Contact import without a database: row validation and the CSV/XLSX readers."""

from __future__ import annotations

import codecs
import csv
import io
import re
from typing import Any

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer_server.contacts.files import MAX_LINE_CHARS, CsvRows, read_csv, read_file, read_xlsx
from dialer_server.contacts.import_reports import ProblemLog
from dialer_server.contacts.rows import (
    COLUMNS,
    ImportFileError,
    RowError,
    RowValidator,
    check_header,
)

# 2 + 13 spaces + 14 = 29 characters; the same number would be valid if shorter.
PHONE_29 = "+1" + " " * 13 + "(202) 555-0101"
PHONE_28 = "+1" + " " * 12 + "(202) 555-0101"


def validate(*rows: dict[str, Any], region: str = "US") -> tuple[list[Any], list[RowError]]:
    batch = RowValidator(region).validate(rows)
    return batch.records, batch.errors


def record(values: tuple[str | None, ...]) -> dict[str, str | None]:
    return {name: value for name, value in zip(COLUMNS, values, strict=True) if value is not None}


# --- validation ----------------------------------------------------------------------


def test_a_good_row_is_normalised_to_e164_with_the_campaign_region() -> None:
    records, errors = validate(
        {
            "phone1": " (202) 555-0101 ",
            "phone2": "+44 20 7946 0958",
            "external_id": " crm-1 ",
            "param1": "Alice",
            "param12": "x" * 255,
            "timezone": "Europe/London",
        }
    )
    assert errors == []
    assert record(records[0]) == {
        "external_id": "crm-1",
        "phone1": "+12025550101",
        "phone2": "+442079460958",
        "param1": "Alice",
        "param12": "x" * 255,
        "timezone": "Europe/London",
    }


def test_numbers_without_country_code_are_read_in_the_default_region() -> None:
    records, errors = validate({"phone1": "030 1234567"}, region="DE")
    assert errors == []
    assert records[0][1] == "+49301234567"


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ({"phone1": ""}, "phone1", "phone1 is required"),
        ({"phone2": "2025550101"}, "phone1", "phone1 is required"),
        ({"phone1": "   "}, "phone1", "phone1 is required"),
        ({"phone1": PHONE_29}, "phone1", "longer than 28 characters (29)"),
        ({"phone1": "12345"}, "phone1", "'12345' is not a valid phone number"),
        ({"phone1": "hello"}, "phone1", "'hello' is not a phone number"),
        ({"phone1": "+999 1234567"}, "phone1", "(unknown or missing country code)"),
        ({"phone1": "+1 202 555 0101 ext 5"}, "phone1", "has an extension"),
        ({"phone1": "2025550101", "phone3": "0"}, "phone3", "not a"),
        ({"phone1": "2025550101", "param3": "é" * 256}, "param3", "longer than 255 characters"),
        ({"phone1": "2025550101", "timezone": "Mars/Olympus"}, "timezone", "not an IANA"),
        ({"phone1": "2025550101", "external_id": "x" * 256}, "external_id", "longer than 255"),
        ({"phone1": "2025550101", "param1": "a\x00b"}, "param1", "cannot hold"),
        ({"phone1": "2025550101", "param1": "\udce9"}, "param1", "cannot hold"),
        ({"phone1": "2025550101", "param1": ["x"]}, "param1", "must be text, not list"),
        ({"phone1": "2025550101", "parm1": "x"}, "parm1", "unknown column"),
    ],
)
def test_each_bad_value_rejects_its_row_naming_field_and_reason(
    row: dict[str, Any], field: str, reason: str
) -> None:
    records, errors = validate(row)
    assert records == []
    assert [(e.row, e.field) for e in errors] == [(1, field)]
    assert reason in errors[0].reason


def test_a_28_character_phone_is_accepted() -> None:
    records, errors = validate({"phone1": PHONE_28})
    assert errors == [] and records[0][1] == "+12025550101"


def test_every_problem_of_a_row_is_reported() -> None:
    _, errors = validate({"phone1": "1", "param2": "x" * 300, "timezone": "Nowhere"})
    assert [e.field for e in errors] == ["phone1", "param2", "timezone"]


def test_json_numbers_are_read_as_text() -> None:
    records, errors = validate({"phone1": 12025550101, "external_id": 42})
    assert errors == []
    assert record(records[0]) == {"external_id": "42", "phone1": "+12025550101"}


def test_rows_are_numbered_by_position_unless_they_carry_their_row() -> None:
    batch = RowValidator("US").validate(
        [{"phone1": "2025550101"}, {"phone1": "x"}, {"phone1": "y", "$row": "17"}],
        first_position=11,
    )
    assert [e.row for e in batch.errors] == [12, 17]


def test_a_reader_problem_rejects_the_row_alone() -> None:
    records, errors = validate({"$row": "4", "$error": "broken quoting"}, {"phone1": "2025550101"})
    assert errors == [RowError(4, None, "broken quoting")]
    assert len(records) == 1


def test_the_first_row_with_an_external_id_claims_it_across_chunks() -> None:
    validator = RowValidator("US")
    first = validator.validate([{"phone1": "1", "external_id": "A"}], first_position=2)
    later = validator.validate(
        [{"phone1": "2025550101", "external_id": "A"}, {"phone1": "2025550102"}],
        first_position=3,
    )
    assert [e.field for e in first.errors] == ["phone1"]
    assert later.errors == [
        RowError(3, "external_id", "duplicate: external_id 'A' is already in row 2")
    ]
    assert len(later.records) == 1  # the row without an id is never a duplicate


# --- the header ----------------------------------------------------------------------


def test_header_names_are_normalised() -> None:
    assert check_header([" Phone1 ", "EXTERNAL_ID", ""]) == ["phone1", "external_id", ""]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (["phone1", "phnoe2"], "unknown column 'phnoe2' (did you mean phone2?)"),
        (["phone1", "email"], "unknown column 'email': the first row must name the columns"),
        (["phone1", "param1", "PARAM1"], "column param1 appears more than once"),
        (["phone2", "param1"], "no phone1 column"),
        (["", " "], "the header row is empty"),
    ],
)
def test_a_bad_header_refuses_the_file(header: list[str], message: str) -> None:
    with pytest.raises(ImportFileError, match=re.escape(message)):
        check_header(header)


# --- CSV -------------------------------------------------------------------------------


def rows_of(data: bytes) -> list[dict[str, str]]:
    return read_csv(data)


def test_csv_rows_carry_their_line_and_every_header_column() -> None:
    rows = rows_of(b"\xef\xbb\xbfPhone1,param1\r\n2025550101,a\r\n\r\n2025550102,\r\n")
    assert rows == [
        {"phone1": "2025550101", "param1": "a", "$row": "2"},
        {"phone1": "2025550102", "param1": "", "$row": "4"},
    ]


def test_csv_delimiter_is_taken_from_the_header() -> None:
    assert rows_of(b"phone1;param1\n2025550101;a,b\n")[0]["param1"] == "a,b"
    assert rows_of(b"phone1\tparam1\n2025550101\ta;b\n")[0]["param1"] == "a;b"


def test_a_quoted_value_may_span_lines() -> None:
    rows = rows_of(b'phone1,param1\n2025550101,"Main St 1\nApt 2"\n2025550102,b\n')
    assert [(r["$row"], r["param1"]) for r in rows] == [("2", "Main St 1\nApt 2"), ("4", "b")]


def test_a_stray_quote_costs_its_own_row_only() -> None:
    data = b'phone1,param1\n2025550101,"never closed\n2025550102,b\n2025550103,c\n'
    rows = rows_of(data)
    assert rows[0]["$row"] == "2" and "broken quoting" in rows[0]["$error"]
    assert [(r["$row"], r["param1"]) for r in rows[1:]] == [("3", "b"), ("4", "c")]


def test_text_after_a_closing_quote_is_broken_quoting() -> None:
    rows = rows_of(b'phone1,param1\n2025550101,"a"b\n2025550102,c\n')
    assert "broken quoting" in rows[0]["$error"]
    assert rows[1] == {"phone1": "2025550102", "param1": "c", "$row": "3"}


def test_a_quote_that_swallows_lines_until_another_quote_costs_one_row() -> None:
    data = b'phone1,param1,param2\n2025550101,"open,x\n2025550102,b,x\n2025550103,"q",x\n'
    rows = rows_of(data)
    assert [r["$row"] for r in rows] == ["2", "3", "4"]
    assert "broken quoting" in rows[0]["$error"]
    assert rows[2]["param1"] == "q"


def test_a_row_with_another_number_of_fields_is_reported() -> None:
    rows = rows_of(b"phone1,param1\n2025550101,a,b\n2025550102\n2025550103,c,\n,,\n")
    assert "has 3 fields, the header has 2" in rows[0]["$error"]
    assert "has 1 field, the header has 2" in rows[1]["$error"]
    assert "has 3 fields, the header has 2" in rows[2]["$error"]
    assert len(rows) == 3  # a line of delimiters only is blank


def test_a_row_that_is_not_utf8_is_reported_and_the_others_read() -> None:
    data = "phone1,param1\n2025550101,café\n".encode() + "2025550102,café\n".encode("latin-1")
    rows = rows_of(data)
    assert rows[0]["param1"] == "café"
    assert rows[1] == {
        "$row": "3",
        "$error": "not UTF-8 text (byte 0xE9 in param1): save the file as UTF-8",
    }


def test_a_file_of_which_no_row_decodes_is_refused() -> None:
    with pytest.raises(ImportFileError, match="not UTF-8"):
        rows_of("phone1,param1\n2025550101,café\n".encode("latin-1"))
    with pytest.raises(ImportFileError, match="header line cannot be read"):
        rows_of("phone1,paräm1\n2025550101,x\n".encode("latin-1"))


def test_utf16_with_a_byte_order_mark_is_read() -> None:
    data = codecs.BOM_UTF16_LE + "phone1\tparam1\r\n2025550101\tcafé\r\n".encode("utf-16-le")
    assert rows_of(data)[0]["param1"] == "café"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\n \n", "empty"),
        (b"PK\x03\x04rest", "XLSX"),
        (b"\x00\x01\x02binary", "binary"),
        (b"+12025550101,hello\n", "unknown column"),
    ],
)
def test_unreadable_csv_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        rows_of(data)


_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_TEXT, _TEXT, _TEXT), min_size=1, max_size=8))
def test_csv_written_by_a_csv_writer_reads_back_unchanged(values: list[tuple[str, ...]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["phone1", "param1", "param2"])
    kept = []
    for row in values:
        if not any(row):
            continue  # a row of empty cells is a blank line
        writer.writerow(row)
        kept.append(row)
    rows = read_csv(out.getvalue().encode())
    assert [(r["phone1"], r["param1"], r["param2"]) for r in rows] == kept
    assert all("$error" not in r for r in rows)
    numbers = [int(r["$row"]) for r in rows]
    assert numbers == sorted(set(numbers)) and (not numbers or numbers[0] == 2)


# --- validation properties ---------------------------------------------------------------

_VALUE = st.one_of(
    st.none(),
    _TEXT,
    st.sampled_from(["2025550101", "+44 20 7946 0958", "12345", PHONE_29, "Europe/Paris", ""]),
    st.text(max_size=300),
    st.integers(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from([*COLUMNS, "other"]), _VALUE), max_size=10))
def test_each_row_is_either_one_stored_record_or_rejected_with_reasons(
    rows: list[dict[str, Any]],
) -> None:
    batch = RowValidator("US").validate(rows)
    rejected = {e.row for e in batch.errors}
    assert len(batch.records) + len(rejected) == len(rows)
    assert rejected <= set(range(1, len(rows) + 1))
    for values in batch.records:
        assert len(values) == len(COLUMNS)
        assert values[1] is not None  # phone1
        for phone in values[1:6]:
            assert phone is None or (phone.startswith("+") and phone[1:].isdigit())
        for value in values:
            assert value is None or ("\x00" not in value and value == value.strip())
            if value is not None:
                value.encode()
        assert all(v is None or len(v) <= 255 for v in values)


# --- XLSX --------------------------------------------------------------------------------


def xlsx(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_xlsx_cells_read_as_the_text_a_csv_would_hold() -> None:
    data = xlsx(
        [
            ["phone1", "param1", "param2", "external_id"],
            [2025550101, 1.5, True, 7],
            [],
            ["2025550102", None, None, "x"],
        ]
    )
    assert read_xlsx(data) == [
        {
            "phone1": "2025550101",
            "param1": "1.5",
            "param2": "TRUE",
            "external_id": "7",
            "$row": "2",
        },
        {"phone1": "2025550102", "param1": "", "param2": "", "external_id": "x", "$row": "4"},
    ]
    assert read_file("contacts.bin", data) == read_xlsx(data)


def test_xlsx_values_beyond_the_header_are_reported() -> None:
    rows = read_xlsx(xlsx([["phone1"], ["2025550101", "stray"]]))
    assert rows[0]["$error"] == "a value in a column without a name"


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("a.xlsx", b"not a zip", "not a readable XLSX"),
        ("a.xls", b"\xd0\xcf\x11\xe0old", "old .xls"),
        ("a.xlsx", b"PK\x03\x04broken", "not a readable XLSX"),
    ],
)
def test_unreadable_workbooks_are_refused(name: str, data: bytes, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        read_file(name, data)


def test_an_empty_sheet_is_refused() -> None:
    with pytest.raises(ImportFileError, match="empty"):
        read_xlsx(xlsx([]))


def test_a_problem_log_counts_rows_once_keeps_the_first_and_spools_up_to_its_cap() -> None:
    log = ProblemLog(7, shown=3, max_listed=4)
    try:
        log.add([RowError(2, "phone1", "a"), RowError(2, "param1", "b")])
        log.add([])
        log.add([RowError(5, None, "c"), RowError(6, "phone1", "d\x00e\udce9")])
        log.add([RowError(9, "phone1", "f")])
        assert (log.count, log.rows, log.listed) == (5, 4, 4)
        assert [e.reason for e in log.shown] == ["a", "b", "c"]
        # As COPY reads it: no field is NULL (an unquoted empty cell); no NUL, no lone
        # surrogate reaches PostgreSQL.
        assert log.spooled().read().decode().splitlines() == [
            "7,1,2,phone1,a",
            "7,2,2,param1,b",
            "7,3,5,,c",
            "7,4,6,phone1,d\\x00e\\udce9",
        ]
    finally:
        log.close()


# --- reading a chunk at a time -------------------------------------------------------------


def test_a_csv_is_read_a_chunk_at_a_time_with_the_rows_of_a_whole_read() -> None:
    lines = [b"phone1,param1"] + [f"20255501{i:02d},p{i}".encode() for i in range(25)]
    data = b"\r\n".join(lines) + b"\r\n"
    reader = CsvRows(io.BytesIO(data))
    chunks = []
    while chunk := reader.read(10):
        chunks.append(chunk)
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert [r for c in chunks for r in c] == read_csv(data)
    assert reader.fraction() == 1.0


def test_a_line_too_long_to_be_a_row_is_reported_and_never_held_whole() -> None:
    data = (
        b"phone1,param1\n2025550101,a\n"
        + b"2025550102,"
        + b"x" * (MAX_LINE_CHARS + 10)
        + b"\n"
        + b"2025550103,c\n"
    )
    rows = read_csv(data)
    assert [r["$row"] for r in rows] == ["2", "3", "4"]
    assert rows[1]["$error"] == f"the line is longer than {MAX_LINE_CHARS} characters"
    assert rows[2]["param1"] == "c"


def test_a_quote_never_closed_swallows_a_bounded_part_of_the_file_then_reading_goes_on() -> None:
    # The csv module gives up on a field past 131,072 characters: the swallowed lines
    # are read again and the file goes on.
    filler = "".join(f"2025550{i % 900 + 100},{'y' * 200}\n" for i in range(1000))
    data = ('phone1,param1\n2025550101,"open\n' + filler).encode()
    rows = read_csv(data)
    assert "broken quoting" in rows[0]["$error"]
    assert len(rows) == 1001 and all("$error" not in r for r in rows[1:])
