"""Reading a national do-not-call registry's file: numbers in E.164, fast. Pure code, no I/O.

A registry file is tens of millions of numbers, one per line, or a CSV whose first column
is the number (a header line is skipped); ``#`` starts a comment line; blanks, dashes,
dots, parentheses and slashes inside a number are ignored. Gzip is undone as the bytes
come (:class:`Gunzip`, several members allowed).

A number is read the way phonenumbers reads it for the registry's region, without
parsing each one with phonenumbers (some 20 µs a number, where a registry needs 5):
``+`` or the region's international prefix starts an international number; otherwise it
is national: the national prefix (``0`` in the UK, ``1`` in the US) is dropped when what
follows has a length the region's numbers have, and the country code is put in front.
Digits that already start with the country code and then have such a length are taken
as international written without ``+``. Regions whose national numbers need more than
that (a prefix that is a pattern, digits that change: Argentina, Brazil, Japan...) are
read with phonenumbers itself, slower but right (:attr:`NumberReader.fast`). A number
is refused when it is not 7 to 15 digits in all (E.164's bounds), or, national, has a
length no number of the region has: listing a number too many never calls anyone, so
that is all that is checked.
"""

from __future__ import annotations

import dataclasses
import re
import zlib

import phonenumbers
from phonenumbers import PhoneMetadata

# A line longer than this is no number (and no CSV line of a registry).
MAX_LINE = 1000
# Problems a load keeps the text of; the others are counted.
MAX_PROBLEMS = 20
_SEPARATORS = str.maketrans("", "", " -.()/\t")
_PLAIN = re.compile(r"[0-9]+")


@dataclasses.dataclass(frozen=True)
class Problem:
    """A line that is not a number: its line number (from 1), its text, and why."""

    line: int
    text: str
    reason: str


class Gunzip:
    """Undoes gzip as the bytes come, when they are gzip (told by their first two
    bytes); passes anything else through. Several members one after the other are one
    stream (RFC 1952), as gzip -c a b > c makes."""

    def __init__(self) -> None:
        self._z: zlib._Decompress | None = None
        self._decided = False
        self._head = b""

    def feed(self, data: bytes) -> bytes:
        if not self._decided:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return b""
            self._decided = True
            if data[:2] == b"\x1f\x8b":
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self._z is None:
            return data
        out = b""
        while data:
            out += self._z.decompress(data)
            data = self._z.unused_data
            if data:
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return out

    def finish(self) -> bytes:
        """What is left once every byte was fed; ValueError for a gzip stream cut short."""
        if not self._decided:
            self._decided = True
            head, self._head = self._head, b""
            return head
        if self._z is not None and not self._z.eof:
            raise ValueError("the gzip data ends before its end (the file is cut short)")
        return b""


class NumberReader:
    """Turns a registry's lines into E.164 numbers for one region."""

    def __init__(self, region: str) -> None:
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            raise ValueError(f"{region!r} is not a region phonenumbers knows")
        self.region = region
        self.country_code = str(metadata.country_code)
        general = metadata.general_desc
        self.lengths = frozenset(general.possible_length or ()) if general else frozenset()
        self.national_prefix = metadata.national_prefix or ""
        parsing = metadata.national_prefix_for_parsing
        self.fast = (
            metadata.national_prefix_transform_rule is None
            and (parsing is None or parsing.split("|")[0] == self.national_prefix)
            and bool(self.lengths)
        )
        prefixes = {"00"}
        for prefix in (metadata.international_prefix, metadata.preferred_international_prefix):
            if prefix and _PLAIN.fullmatch(prefix):
                prefixes.add(prefix)
        # The longest first: 0011 before 00.
        self.international = tuple(sorted(prefixes, key=len, reverse=True))
        self.line = 0
        self.read = 0
        self.rejected = 0
        self.problems: list[Problem] = []
        self._rest = ""
        self._header_checked = False

    def numbers(self, text: str) -> list[str]:
        """The numbers of ``text``, a piece of the file (lines may span pieces)."""
        text = self._rest + text
        lines = text.split("\n")
        self._rest = lines.pop()
        return self._lines(lines)

    def end(self) -> list[str]:
        """The numbers of the last line, if the file does not end with a line break."""
        rest, self._rest = self._rest, ""
        return self._lines([rest]) if rest else []

    def _lines(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        append = out.append
        number = self.number
        for line in lines:
            self.line += 1
            raw = line.strip()
            if not raw or raw[0] == "#":
                continue
            if "," in raw or ";" in raw:
                raw = re.split("[,;]", raw, maxsplit=1)[0].strip().strip('"').strip()
            elif raw[0] == '"':
                raw = raw.strip('"').strip()
            if not self._header_checked:
                self._header_checked = True
                if raw and not any(c.isdigit() for c in raw):
                    continue  # a header line ("number", "phone"...)
            self.read += 1
            if len(raw) > MAX_LINE:
                self._refuse(raw, "longer than a number can be")
                continue
            e164 = number(raw)
            if e164 is None:
                continue
            append(e164)
        return out

    def number(self, raw: str) -> str | None:
        """``raw`` in E.164, or None (a problem noted)."""
        plus = raw[:1] == "+"
        digits = raw.translate(_SEPARATORS)
        if plus:
            digits = digits[1:]
        if not digits.isdigit() or not digits.isascii():
            self._refuse(raw, "is not a phone number")
            return None
        if not plus:
            for prefix in self.international:
                if digits.startswith(prefix):
                    digits = digits[len(prefix) :]
                    plus = True
                    break
        if not plus:
            if not self.fast:
                return self._slow(raw)
            national = self._national(digits)
            if national is None:
                self._refuse(raw, f"is not a number of {self.region} (wrong length)")
                return None
            digits = self.country_code + national
        if not 7 <= len(digits) <= 15:
            self._refuse(raw, "has not 7 to 15 digits with its country code")
            return None
        return "+" + digits

    def _national(self, digits: str) -> str | None:
        lengths = self.lengths
        prefix = self.national_prefix
        if prefix and digits.startswith(prefix) and len(digits) - len(prefix) in lengths:
            return digits[len(prefix) :]
        if len(digits) in lengths:
            return digits
        code = self.country_code
        if digits.startswith(code) and len(digits) - len(code) in lengths:
            return digits[len(code) :]
        return None

    def _slow(self, raw: str) -> str | None:
        try:
            parsed = phonenumbers.parse(raw, self.region)
        except phonenumbers.NumberParseException as exc:
            self._refuse(raw, f"is not a phone number ({exc})")
            return None
        if not phonenumbers.is_possible_number(parsed):
            self._refuse(raw, f"is not a possible number of {self.region}")
            return None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    def _refuse(self, raw: str, reason: str) -> None:
        self.rejected += 1
        if len(self.problems) < MAX_PROBLEMS:
            shown = raw if len(raw) <= 40 else raw[:37] + "..."
            self.problems.append(Problem(self.line, shown, f"{shown!r} {reason}"))


def copy_lines(numbers: list[str]) -> bytes:
    """``numbers`` as COPY's text format (one column): numbers need no escaping."""
    return ("\n".join(numbers) + "\n").encode() if numbers else b""
