"""Gauges read from PostgreSQL every few seconds, never during a scrape.

Contacts by state and the due backlog per campaign, contacts by flow task and
status (campaigns with a flow), the campaigns' limits and state, the calls open on
each PBX of the daemon's pool (across every daemon), the webhook outbox's depth,
and the connection pool's use. A refresh is
bounded by a timeout: a slow or absent database makes the gauges stale (and,
through the daemon's outage tracker, ``dialer_db_up`` 0), never ``/metrics`` slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from ..db.outage import TRANSIENT_ERRORS, Outage
from ..db.queries import queries_of
from .metrics import CampaignInfo, Metrics

query = queries_of(__name__)


logger = logging.getLogger(__name__)

REFRESH_INTERVAL_S = 5.0
REFRESH_TIMEOUT_S = 4.0
# A campaign keeps its series this long after its last change (completed,
# stopped): long enough for every scrape to see its last counts.
CAMPAIGN_LINGER_S = 3600.0
# The campaign label never has more values than this, whatever the database holds.
MAX_CAMPAIGNS = 200


class StatsRefresher:
    def __init__(
        self,
        pool: Any,
        metrics: Metrics,
        default_trunk: str,
        *,
        interval_s: float = REFRESH_INTERVAL_S,
        timeout_s: float = REFRESH_TIMEOUT_S,
        outage: Outage | None = None,
        pbxs: Sequence[str] = (),
    ) -> None:
        """``pbxs``: the names of the daemon's PBXs, whose open calls are counted."""
        self.pool = pool
        self.outage = outage if outage is not None else Outage(metrics.db_up)
        self.metrics = metrics
        self.default_trunk = default_trunk
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._failing = False
        self.pbxs = list(pbxs)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every ``interval_s`` until ``stop``; failures are counted, not raised."""
        while not stop.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    async def refresh(self) -> bool:
        """One refresh; False (gauges left as they were) if the database failed us."""
        started = time.monotonic()
        self._pool_gauges()
        try:
            async with asyncio.timeout(self.timeout_s), self.pool.acquire() as conn:
                await self._read(conn)
        except Exception as exc:  # any failure: stale gauges, never a dead task
            self.metrics.stats_refresh_failures.inc()
            if isinstance(exc, TRANSIENT_ERRORS):
                self.outage.down(exc, component="stats")
            elif not self._failing:
                # Not an outage: a bug, logged with its traceback once per streak.
                logger.warning(
                    "metrics: database gauges not refreshed: %s",
                    str(exc) or type(exc).__name__,
                    exc_info=True,
                    extra={"action": "stats"},
                )
            self._failing = True
            return False
        self.outage.back()
        self._failing = False
        self.metrics.stats_refresh_duration.observe(time.monotonic() - started)
        return True

    async def _read(self, conn: Any) -> None:
        rows = await conn.fetch(query("stats_campaigns"), CAMPAIGN_LINGER_S, MAX_CAMPAIGNS)
        campaigns = [
            CampaignInfo(
                id=row["id"],
                name=row["name"],
                state=row["state"],
                trunk=row["trunk"] or self.default_trunk,
                max_concurrent_calls=row["max_concurrent_calls"],
                max_calls_per_second=float(row["max_calls_per_second"]),
            )
            for row in rows
        ]
        ids = [c.id for c in campaigns]
        by_state: dict[int, dict[str, int]] = {i: {} for i in ids}
        for row in await conn.fetch(query("stats_contacts_by_state"), ids):
            by_state[row["campaign_id"]][row["state"]] = row["contacts"]
        due = {
            row["campaign_id"]: (row["due"], max(0.0, row["oldest_s"]))
            for row in await conn.fetch(query("stats_due_contacts"), ids)
        }
        outbox_depth, outbox_age = await self._outbox(conn)
        pbx_calls = dict.fromkeys(self.pbxs, 0)
        for row in await conn.fetch(query("stats_pbx_channels"), self.pbxs):
            pbx_calls[row["pbx"]] = row["calls"]
        by_task: dict[int, dict[tuple[str, str], int]] = {}
        for row in await conn.fetch(query("stats_flow_contacts"), ids):
            counts = by_task.setdefault(row["campaign_id"], {})
            counts[(row["task"], row["status"])] = row["contacts"]

        self.metrics.track_campaigns(campaigns)
        for campaign_id in ids:
            count, age = due.get(campaign_id, (0, 0.0))
            self.metrics.set_contacts(campaign_id, by_state[campaign_id], count, age)
        self.metrics.set_pbx_channels(pbx_calls)
        for campaign_id, counts in by_task.items():
            self.metrics.set_flow_contacts(campaign_id, counts)
        self.metrics.webhook_outbox_depth.set(outbox_depth)
        self.metrics.webhook_outbox_age.set(outbox_age)

    @staticmethod
    async def _outbox(conn: Any) -> tuple[int, float]:
        if not await conn.fetchval(query("stats_webhook_outbox_exists")):
            return 0, 0.0
        row = await conn.fetchrow(query("stats_webhook_outbox"))
        return int(row["depth"]), max(0.0, row["oldest_s"])

    def _pool_gauges(self) -> None:
        size = self.pool.get_size()
        idle = self.pool.get_idle_size()
        self.metrics.db_pool_connections.labels(state="in_use").set(size - idle)
        self.metrics.db_pool_connections.labels(state="idle").set(idle)
        self.metrics.db_pool_max.set(self.pool.get_max_size())
