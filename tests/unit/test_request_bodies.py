"""Decoding request bodies by their Content-Encoding (api/common.Inflater): pure code."""

from __future__ import annotations

import gzip
import itertools
import zlib
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dialer_server.api.common import BadEncoding, Inflater, PayloadTooLarge

ENCODERS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "two gzip members": (
        "gzip",
        lambda d: gzip.compress(d[: len(d) // 2]) + gzip.compress(d[len(d) // 2 :]),
    ),
    "deflate (zlib)": ("deflate", zlib.compress),
    "raw deflate": ("deflate", lambda d: zlib.compress(d, wbits=-15)),
}


def decode(coding: str, data: bytes, cuts: list[int], room: int = 10**7) -> bytes:
    inflater = Inflater(coding)
    out = b""
    edges = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    for start, end in itertools.pairwise(edges):
        out += inflater.feed(data[start:end], room - len(out))
    inflater.finish()
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=3000),
    st.sampled_from(sorted(ENCODERS)),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_a_body_in_any_pieces_decodes_to_what_was_encoded(
    body: bytes, encoder: str, cuts: list[int]
) -> None:
    coding, encode = ENCODERS[encoder]
    assert decode(coding, encode(body), cuts) == body


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=1, max_size=2000),
    st.sampled_from(sorted(ENCODERS)),
    st.lists(st.integers(0, 10_000), max_size=5),
    st.data(),
)
def test_a_body_cut_short_or_followed_by_more_is_bad_encoding(
    body: bytes, encoder: str, cuts: list[int], data: st.DataObject
) -> None:
    coding, encode = ENCODERS[encoder]
    encoded = encode(body)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    # Cut where the first of two gzip members ends, the body is one whole member.
    assume(encoder != "two gzip members" or cut != len(gzip.compress(body[: len(body) // 2])))
    with pytest.raises(BadEncoding):
        decode(coding, encoded[:cut], cuts)
    with pytest.raises(BadEncoding):
        decode(coding, encoded + b"trailing", cuts)


@given(st.sampled_from(sorted(ENCODERS)), st.lists(st.integers(0, 10_000), max_size=5))
def test_a_body_that_decodes_beyond_the_room_is_too_large_before_it_is_all_decoded(
    encoder: str, cuts: list[int]
) -> None:
    coding, encode = ENCODERS[encoder]
    with pytest.raises(PayloadTooLarge):
        decode(coding, encode(b"\0" * 100_000), cuts, room=99_999)
    assert decode(coding, encode(b"\0" * 100_000), cuts, room=100_000) == b"\0" * 100_000


def test_plain_data_said_to_be_compressed_is_bad_encoding() -> None:
    for coding in ("gzip", "deflate"):
        with pytest.raises(BadEncoding):
            decode(coding, b'{"name": "x"}', [])
        with pytest.raises(BadEncoding):
            decode(coding, b"", [])
