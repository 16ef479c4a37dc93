"""Which PBX each new call goes to: spread by free capacity, within every PBX's limit.

Pure: the claim (``claims.py``) counts each usable PBX's open calls across every
daemon, in its transaction and under the PBX's lock, and asks a ``Placer`` for a
PBX per call. Invariants:

- a PBX never gets a call that would put it over its channel limit (``in_use`` +
  the calls placed here <= ``limit``); a PBX without a limit is never full;
- each call goes to the PBX whose load per share is lowest, ``(in_use + placed) /
  share`` (ties: the first in the pool's order), so while every PBX has room the
  calls up at once stay in proportion to the shares, and a full PBX's share goes
  to the others. A PBX's share is its ``weight``, by default its limit: the calls
  spread in proportion to the limits;
- ``free`` is how many calls the PBXs take in all, so a claim never leases a
  contact it cannot place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class PbxLoad:
    """A usable PBX as a claim sees it."""

    name: str
    # Calls open on it now, across every daemon.
    in_use: int
    # Its channel limit; None: none of its own.
    limit: int | None
    # Its weight in the spread (> 0).
    share: float


class Placer:
    """Hands out PBXs for new calls, one at a time."""

    def __init__(self, loads: Sequence[PbxLoad]) -> None:
        self._loads = list(loads)
        self._placed = [0] * len(self._loads)

    @property
    def free(self) -> int | None:
        """How many more calls the PBXs take; None: no limit (a PBX has none)."""
        total = 0
        for load, placed in zip(self._loads, self._placed, strict=True):
            if load.limit is None:
                return None
            total += max(0, load.limit - load.in_use - placed)
        return total

    def take(self, only: str | None = None) -> str | None:
        """The PBX for one more call (``only``: that one or none); None when all are full."""
        best: int | None = None
        best_load = 0.0
        for index, load in enumerate(self._loads):
            if only is not None and load.name != only:
                continue
            used = load.in_use + self._placed[index]
            if load.limit is not None and used >= load.limit:
                continue
            per_share = used / load.share
            if best is None or per_share < best_load:
                best, best_load = index, per_share
        if best is None:
            return None
        self._placed[best] += 1
        return self._loads[best].name

    def placed(self) -> dict[str, int]:
        """The calls handed out so far, by PBX."""
        return {
            load.name: placed
            for load, placed in zip(self._loads, self._placed, strict=True)
            if placed
        }
