#!/usr/bin/env python3
"""Write the far end's audio: RTP captures (G.711 u-law, 20 ms packets) for sipp.

farend.xml plays them with ``<exec play_pcap_audio="..."/>`` so that
answering-machine detection (Asterisk's AMD()) has something to listen to:

    farend-human.pcap    "Hello?": 0.2 s of silence, 0.6 s of voice, then silence
                         (a person answering, then waiting for us to speak)
    farend-machine.pcap  a greeting: 0.2 s of silence, 3 s of voice, then silence
                         (a recorded message, longer than AMD's 1.5 s greeting limit)
    farend-silence.pcap  3 s of silence (a line that answers and says nothing)

"Voice" is a vowel-like sound (a 200 Hz tone with harmonics, slowly varying
loudness, always well above AMD's silence threshold); silence is digital
silence. The files are committed; run this again only to change them:

    python3 scripts/sipp/make_pcaps.py
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
RATE = 8000
PACKET_MS = 20
SAMPLES = RATE * PACKET_MS // 1000
PCMU = 0
SSRC = 0x0D1A1E55
# sipp rewrites addresses and ports when it plays a capture; these only have
# to be consistent (every packet to the same port).
SRC_PORT, DST_PORT = 6000, 10000


def ulaw(sample: int) -> int:
    """One 16-bit linear sample as G.711 u-law (ITU-T G.711, with the 0x84 bias)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = 7
    for bit in range(7):
        if magnitude < (0x100 << bit):
            exponent = bit
            break
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def voice(n: int, start: int) -> bytes:
    out = bytearray()
    for i in range(start, start + n):
        t = i / RATE
        loudness = 0.75 + 0.25 * math.sin(2 * math.pi * 3 * t)
        value = sum(math.sin(2 * math.pi * 200 * k * t) / k for k in (1, 2, 3, 4))
        out.append(ulaw(int(6000 * loudness * value)))
    return bytes(out)


def silence(n: int) -> bytes:
    return bytes([ulaw(0)]) * n


def audio(parts: list[tuple[str, float]]) -> bytes:
    samples = bytearray()
    for kind, seconds in parts:
        n = int(seconds * RATE)
        samples += voice(n, len(samples)) if kind == "voice" else silence(n)
    return bytes(samples)


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def packet(payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP around one RTP packet (sipp reads exactly this)."""
    udp_len = 8 + len(payload)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, 64, 17, 0,
        bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]),
    )  # fmt: skip
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    udp = struct.pack("!HHHH", SRC_PORT, DST_PORT, udp_len, 0)
    ethernet = b"\x00" * 12 + b"\x08\x00"
    return ethernet + ip + udp + payload


def write_pcap(path: Path, samples: bytes) -> None:
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for seq, offset in enumerate(range(0, len(samples) - SAMPLES + 1, SAMPLES)):
        rtp = struct.pack("!BBHII", 0x80, PCMU | (0x80 if seq == 0 else 0), seq, offset, SSRC)
        frame = packet(rtp + samples[offset : offset + SAMPLES])
        usec = seq * PACKET_MS * 1000
        out += struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
        out += frame
    path.write_bytes(bytes(out))


def main() -> None:
    write_pcap(
        HERE / "farend-human.pcap", audio([("silence", 0.2), ("voice", 0.6), ("silence", 2.2)])
    )
    write_pcap(
        HERE / "farend-machine.pcap", audio([("silence", 0.2), ("voice", 3.0), ("silence", 1.0)])
    )
    write_pcap(HERE / "farend-silence.pcap", audio([("silence", 3.0)]))


if __name__ == "__main__":
    main()
