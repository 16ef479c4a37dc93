"""Recordings' files: only ever inside [recording] dir, and their WAV header read."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from dialer_server.campaigns.recordings import file_name, inside, wav_info


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/etc/passwd", "sub/x.wav", "..", "", "./", "a/../../b.wav"]
)
def test_nothing_outside_the_folder_is_ever_a_recording(tmp_path: Path, path: str) -> None:
    assert inside(str(tmp_path), path) is None


def test_a_recording_is_named_by_its_attempt(tmp_path: Path) -> None:
    name = file_name("0b6f8a39-5f3e-4a4e-9d1c-2f7b1f0a9c11")
    assert name == "0b6f8a39-5f3e-4a4e-9d1c-2f7b1f0a9c11.wav"
    assert inside(str(tmp_path), name) == tmp_path.resolve() / name
    assert inside("", name) is None  # no [recording] dir: nothing is reachable


def test_a_wav_files_duration_comes_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\x00\x00" * 8000 * 5 + b"\x00\x00" * 4000)
    info = wav_info(path)
    assert info is not None and info.duration_s == 5.5 and info.size == path.stat().st_size
    (tmp_path / "half.wav").write_bytes(b"RIFF\x00\x00")
    assert wav_info(tmp_path / "half.wav") is None
    assert wav_info(tmp_path / "none.wav") is None
