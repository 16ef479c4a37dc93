"""How well a campaign used its agents: talk time, abandons and calls per agent-hour.

Over a time range (the counts are of calls *created* in it):

- ``talk_s``: the agents' talk time that falls in the range, from the agent
  taking a call (``agent_connected_at``, our dialplan's DialerAgent) to its
  hangup (a call still up counts until now);
- ``abandon_rate``: abandoned / answered, where answered means answered by a
  person: connected to an agent, or abandoned (machines never reach the queue);
- agent-hours: ``agents`` x the range's hours. ``agents`` is given by the caller
  (the agents logged in over the run: the test and the bench know them), else
  the distinct agents who took a call in the range. The range is the one given,
  else from the first call's start to the last call's end;
- ``talk_min_per_agent_hour`` (occupancy x 60) and ``calls_per_agent_hour``
  (connected calls).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from ..db.queries import queries_of

query = queries_of(__name__)

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class AgentStats:
    campaign_id: int
    start: datetime
    end: datetime
    agents: int
    calls: int
    answered: int
    connected: int
    abandoned: int
    talk_s: float
    by_agent: tuple[tuple[str, int, float], ...] = ()

    @property
    def hours(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds()) / 3600.0

    @property
    def agent_hours(self) -> float:
        return self.agents * self.hours

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.answered if self.answered else 0.0

    @property
    def talk_min_per_agent_hour(self) -> float:
        return self.talk_s / 60.0 / self.agent_hours if self.agent_hours > 0 else 0.0

    @property
    def calls_per_agent_hour(self) -> float:
        return self.connected / self.agent_hours if self.agent_hours > 0 else 0.0

    @property
    def occupancy(self) -> float:
        return self.talk_min_per_agent_hour / 60.0

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "from": self.start,
            "to": self.end,
            "hours": self.hours,
            "agents": self.agents,
            "agent_hours": self.agent_hours,
            "calls": self.calls,
            "answered": self.answered,
            "connected": self.connected,
            "abandoned": self.abandoned,
            "abandon_rate": self.abandon_rate,
            "talk_s": self.talk_s,
            "talk_min_per_agent_hour": self.talk_min_per_agent_hour,
            "calls_per_agent_hour": self.calls_per_agent_hour,
            "occupancy": self.occupancy,
            "by_agent": [
                {"agent": agent, "calls": calls, "talk_s": talk_s}
                for agent, calls, talk_s in self.by_agent
            ],
        }


async def agent_stats(
    conn: Any,
    campaign_id: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    agents: int | None = None,
) -> AgentStats:
    """The campaign's agent statistics over [start, end) (module docstring)."""
    low, high = start or _EARLIEST, end or _LATEST
    row = await conn.fetchrow(query("agent_stats_totals"), campaign_id, low, high)
    by_agent = await conn.fetch(query("agent_stats_by_agent"), campaign_id, low, high)
    now = datetime.now(UTC)
    span_start = start or row["first_call_at"] or now
    span_end = min(end, now) if end is not None else (row["last_end_at"] or span_start)
    return AgentStats(
        campaign_id=campaign_id,
        start=span_start,
        end=max(span_start, span_end),
        agents=agents if agents is not None else int(row["agents"]),
        calls=int(row["calls"]),
        answered=int(row["answered"]),
        connected=int(row["connected"]),
        abandoned=int(row["abandoned"]),
        talk_s=float(row["talk_s"]),
        by_agent=tuple((r["agent"], int(r["calls"]), float(r["talk_s"])) for r in by_agent),
    )
