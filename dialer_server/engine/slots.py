"""What the engine keeps per running campaign between ticks: its slot.

A slot holds what the claim and the calls of a campaign need without a query:
its limits and the rate limiter of this daemon's sends (``pacing.py``), the PBXs
it may use, its calling window (``calling_window.py``), where its answered calls
go in the dialplan (``answered_calls.py``), its agent pacing
(``agent_dialing.py``) and how many of its attempts this daemon follows.
``Slots.update`` refreshes them from the campaign rows at every tick. A slot
outlives its campaign's running state until its last call has ended
(``Slots.forget_idle``): the calls of a paused campaign are still followed and
counted.

A settings change keeps the rate limiter unless the rate itself changed (a new
limiter starts its window afresh); the calls in flight and the measured pacing
counts always carry over.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..config import DialingConfig
from ..observability.metrics import Metrics
from .agent_pacing import Mode, PacingStats, PredictiveSettings
from .answered_calls import AGENT_MODES, DEFAULT_QUEUE, Dialplan, dialplan_for
from .calling_window import CallingWindow, CallingWindowError, parse_window
from .pacing import RateLimiter

logger = logging.getLogger(__name__)

# Without a window of its own a campaign calls every day 08:00-21:00 local time,
# the hours most regulations allow.
DEFAULT_WINDOW_HOURS = {
    "hours": {day: ["08:00-21:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
}
DEFAULT_WINDOW = parse_window(DEFAULT_WINDOW_HOURS)


@dataclasses.dataclass
class AgentPacing:
    """An agent-mode campaign's pacing: its settings and what the loop last measured."""

    mode: Mode
    queue: str
    dial_ratio: float
    predictive: PredictiveSettings
    grace_s: float = 2.0
    # Calls of this campaign towards agents: from the claim until the call ends.
    calls: set[str] = dataclasses.field(default_factory=set)
    stats: PacingStats = dataclasses.field(default_factory=PacingStats)
    stats_read_at: float = float("-inf")
    ratio: float = 1.0


@dataclasses.dataclass
class CampaignSlot:
    """What the loop keeps per running campaign between ticks."""

    id: int
    name: str
    max_concurrent: int
    calls_per_second: float
    trunk: str | None
    caller_id: str | None
    limiter: RateLimiter
    in_flight: int = 0
    window: CallingWindow = dataclasses.field(default_factory=lambda: DEFAULT_WINDOW)
    # What ``window`` was parsed from (the row's calling_window and timezone).
    window_key: tuple[str, str] | None = None
    # Where answered calls go (the campaign's mode) and the variables for it.
    dialplan: Dialplan | None = None
    # Agent modes only.
    agents: AgentPacing | None = None
    # The mode, and the queue whose members take its calls (agent modes, preview,
    # personal callbacks); preview: which phone rings first.
    mode: str = "automated"
    queue: str = DEFAULT_QUEUE
    preview_dial: str = "agent_first"
    # The PBXs its calls may go to, by name; None: every PBX of the pool.
    pbxs: frozenset[str] | None = None

    @property
    def to_agents(self) -> bool:
        """Whether every call of the campaign goes to an agent (agent modes, preview)."""
        return self.agents is not None or self.mode == "preview"

    @property
    def agents_queue(self) -> str:
        """The queue whose agents take its calls to agents: its own in the agent modes
        and preview, the default queue for the personal callbacks of the others."""
        if self.agents is not None:
            return self.agents.queue
        return self.queue if self.mode == "preview" else DEFAULT_QUEUE


class Slots:
    """The slots of the campaigns this daemon dials or still follows calls of."""

    def __init__(self, dialing: DialingConfig, metrics: Metrics) -> None:
        self._dialing = dialing
        self._metrics = metrics
        self._slots: dict[int, CampaignSlot] = {}

    def get(self, campaign_id: int) -> CampaignSlot | None:
        return self._slots.get(campaign_id)

    def update(self, rows: Sequence[Mapping[str, Any]]) -> list[CampaignSlot]:
        """The slots of the running campaigns ``rows`` (store.running_campaigns)."""
        return [self._update(row) for row in rows]

    def forget_idle(self, running: set[int]) -> None:
        """Drop the slots of campaigns no longer running whose last call has ended."""
        for campaign_id in list(self._slots):
            if campaign_id not in running and self._slots[campaign_id].in_flight == 0:
                del self._slots[campaign_id]

    def call_started(self, slot: CampaignSlot) -> None:
        slot.in_flight += 1
        self._metrics.set_in_flight(slot.id, slot.in_flight)

    def call_ended(self, slot: CampaignSlot, attempt_id: str | None) -> None:
        if slot.agents is not None and attempt_id is not None:
            slot.agents.calls.discard(attempt_id)
        slot.in_flight -= 1
        self._metrics.set_in_flight(slot.id, slot.in_flight)

    def _update(self, row: Mapping[str, Any]) -> CampaignSlot:
        cps = float(row["max_calls_per_second"])
        slot = previous = self._slots.get(row["id"])
        if slot is None or slot.calls_per_second != cps:
            slot = CampaignSlot(
                id=row["id"],
                name=row["name"],
                max_concurrent=row["max_concurrent_calls"],
                calls_per_second=cps,
                trunk=row["trunk"],
                caller_id=row["caller_id"],
                limiter=RateLimiter(cps),
                in_flight=slot.in_flight if slot else 0,
            )
            self._slots[slot.id] = slot
            self._metrics.campaign_seen(slot.id, slot.trunk or self._dialing.trunk)
        slot.max_concurrent = row["max_concurrent_calls"]
        slot.trunk, slot.caller_id = row["trunk"], row["caller_id"]
        slot.pbxs = frozenset(row["pbxs"]) if row.get("pbxs") is not None else None
        # Parsed again only when it changed: every tick reads the rows.
        window_key = (str(row["calling_window"]), row["timezone"])
        if slot.window_key != window_key:
            slot.window = campaign_window(row["calling_window"], row["timezone"])
            slot.window_key = window_key
        slot.dialplan = dialplan_for(row, self._dialing)
        slot.mode = row.get("mode") or "automated"
        slot.queue = row.get("queue") or DEFAULT_QUEUE
        slot.preview_dial = row.get("preview_dial") or "agent_first"
        # A new slot (the rate changed) keeps following the calls of the old one.
        slot.agents = agent_pacing(row, previous.agents if previous else None)
        return slot


def agent_pacing(row: Mapping[str, Any], current: AgentPacing | None) -> AgentPacing | None:
    """An agent-mode campaign's pacing settings; None for the other modes."""
    if row.get("mode") not in AGENT_MODES:
        return None
    predictive = PredictiveSettings(
        abandon_cap=float(row["abandon_cap"]),
        abandon_target=float(row["abandon_target"]),
        max_ratio=float(row["max_dial_ratio"]),
    )
    pacing = AgentPacing(
        mode=Mode(row["mode"]),
        queue=row["queue"],
        dial_ratio=float(row["dial_ratio"]),
        predictive=predictive,
        grace_s=float(row["agent_wait_s"]),
    )
    if current is not None:
        # The calls in flight and the measured counts outlive a settings change.
        pacing.calls, pacing.stats = current.calls, current.stats
        pacing.stats_read_at, pacing.ratio = current.stats_read_at, current.ratio
    return pacing


def campaign_window(raw: Any, campaign_zone: str) -> CallingWindow:
    """The campaign's window; its zone for unknown contacts defaults to the campaign's."""
    data = json.loads(raw) if isinstance(raw, str) else raw
    data = dict(data) if data else dict(DEFAULT_WINDOW_HOURS)
    data.setdefault("timezone", campaign_zone)
    try:
        return parse_window(data)
    except CallingWindowError:
        # The API validates windows; a bad one stored anyway must not open the
        # campaign to any hour: fall back to the default hours.
        logger.error("invalid calling window %r: using the default", raw)
        return parse_window({**DEFAULT_WINDOW_HOURS, "timezone": "UTC"})
