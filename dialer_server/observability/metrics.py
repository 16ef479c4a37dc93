"""Prometheus metrics of one daemon, in a registry of its own (tests run several).

Names follow Prometheus conventions: base units in the name (``_seconds``),
``_total`` on counters. Label sets are bounded: ``campaign`` is a campaign id,
and only campaigns that are running, paused or changed recently keep their
series (``keep_campaigns``, called by the stats refresher); outcomes, states,
channels and AMI action names come from fixed lists. Series of a campaign are
created at zero as soon as it is known, so a rate or a ratio has data before
the first event.

The gauges read from PostgreSQL (contacts by state, due backlog, limits,
webhook outbox) are set by ``stats.py`` every few seconds: a scrape never
waits for the database. Every daemon on one database exports the same values
for them: aggregate them with ``max``, not ``sum``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from .. import __version__
from ..states import CONTACT_FINAL_STATES, CONTACT_STATES
from ..telephony.ami import AmiState
from ..telephony.outcomes import Outcome

# *_created series double every counter for a timestamp nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]

CAMPAIGN_STATES = ("stopped", "running", "paused", "completed")
# What an attempt of each channel can end with (attempts.outcome).
CHANNEL_OUTCOMES: dict[str, tuple[str, ...]] = {
    "call": tuple(str(o) for o in Outcome),
    "sms": ("sent", "failed", str(Outcome.DANGLING)),
}
SMS_RESULTS = ("sent", "failed")
# AMI actions the dialer sends; anything else is counted as "other".
AMI_ACTIONS = (
    "Login",
    "Ping",
    "Originate",
    "CoreShowChannels",
    "MessageSend",
    # the PBX's records of how calls ended (pbx_results.py)
    "DBGetTree",
    "DBGet",
    "DBDel",
    "ShowDialPlan",
    "ModuleCheck",
)
# How a call's result was learned (attempts.result_source).
RESULT_SOURCES = ("live", "pbx", "lost")
# Why the dialer paused a campaign by itself.
AUTO_PAUSE_REASONS = ("trunk_errors",)
_AMI_ACTION_NAMES = {name.lower(): name for name in AMI_ACTIONS}
AMI_FAILURE_REASONS = ("timeout", "disconnected")

# Ringing is regulated to at least 15 s and rarely lasts over a minute.
ANSWER_DELAY_BUCKETS = (1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)
TALK_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclasses.dataclass(frozen=True)
class CampaignInfo:
    """What the stats refresher reads about a campaign (one row of ``stats_campaigns``)."""

    id: int
    name: str
    state: str
    trunk: str
    max_concurrent_calls: int
    max_calls_per_second: float


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)
        # (metric, label values) of every series that names a campaign, by campaign.
        # Every series of a campaign, with its child: created once, then looked up
        # (prometheus_client's labels() takes a lock and checks every value, on every
        # call of every call).
        self._series: dict[str, dict[tuple[Any, tuple[str, ...]], Any]] = {}
        # The same for the series that outlive campaigns (a PBX's, an AMI action's).
        self._fixed: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._in_flight: dict[str, int] = {}
        self._names: dict[str, str] = {}

        build = Gauge("dialer_build_info", "The running version (value 1)", ["version"], registry=r)
        build.labels(version=__version__).set(1)

        # --- AMI ---------------------------------------------------------------------
        self.ami_up = Gauge(
            "dialer_ami_up",
            "1 while the AMI connection of every PBX of the pool is logged in, else 0",
            registry=r,
        )
        self.ami_reconnects = Counter(
            "dialer_ami_reconnects",
            "AMI logins after each PBX's first (each one a recovered outage)",
            registry=r,
        )
        self._ami_logins: dict[str, int] = {}

        # --- the pool of PBXs, by PBX name ([[pbx]]; "default" without one) ----------
        self.pbx_up = Gauge(
            "dialer_pbx_up",
            "1 while the PBX's AMI connection is logged in (calls may go to it), else 0",
            ["pbx"],
            registry=r,
        )
        self.pbx_channels_in_use = Gauge(
            "dialer_pbx_channels_in_use",
            "Calls open on the PBX, counted across every daemon (the database's open "
            "attempts placed on it, what its channel limit is checked against)",
            ["pbx"],
            registry=r,
        )
        self.pbx_channels_limit = Gauge(
            "dialer_pbx_channels_limit",
            "The PBX's channel limit (max_channels; 0: none of its own)",
            ["pbx"],
            registry=r,
        )
        self.pbx_calls_placed = Counter(
            "dialer_pbx_calls_placed",
            "Originates the PBX accepted from this daemon",
            ["pbx"],
            registry=r,
        )
        self.pbx_call_outcomes = Counter(
            "dialer_pbx_call_outcomes",
            "Calls this daemon closed, by the PBX they were placed on and normalised outcome",
            ["pbx", "outcome"],
            registry=r,
        )
        self.ami_action_duration = Histogram(
            "dialer_ami_action_duration_seconds",
            "Time from sending an AMI action to Asterisk's first reply (for an async "
            "Originate: its acceptance, not the call), by action",
            ["action"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.ami_action_failures = Counter(
            "dialer_ami_action_failures",
            "AMI actions whose reply did not come (in full) in time, or was cut off by a "
            "lost connection, by action and reason (timeout, disconnected)",
            ["action", "reason"],
            registry=r,
        )
        for action in (*AMI_ACTIONS, "other"):
            self.ami_action_duration.labels(action=action)
            for reason in AMI_FAILURE_REASONS:
                self.ami_action_failures.labels(action=action, reason=reason)

        # --- calls and attempts, by campaign --------------------------------------------
        self.calls_originated = Counter(
            "dialer_calls_originated",
            "Originates accepted by Asterisk, by campaign id and trunk",
            ["campaign", "trunk"],
            registry=r,
        )
        self.calls_in_flight = Gauge(
            "dialer_calls_in_flight",
            "Attempts this daemon is dialling or following right now, by campaign id",
            ["campaign"],
            registry=r,
        )
        self.attempt_outcomes = Counter(
            "dialer_attempt_outcomes",
            "Attempts closed, by campaign id, channel (call, sms) and normalised outcome",
            ["campaign", "channel", "outcome"],
            registry=r,
        )
        self.answer_delay = Histogram(
            "dialer_call_answer_delay_seconds",
            "From the Originate accepted by Asterisk to the answer, by campaign id",
            ["campaign"],
            buckets=ANSWER_DELAY_BUCKETS,
            registry=r,
        )
        self.talk_duration = Histogram(
            "dialer_call_talk_duration_seconds",
            "From the answer to the hangup of answered calls, by campaign id",
            ["campaign"],
            buckets=TALK_BUCKETS,
            registry=r,
        )
        self.retries_scheduled = Counter(
            "dialer_retries_scheduled",
            "Results after which the strategy planned another attempt, by campaign id",
            ["campaign"],
            registry=r,
        )
        self.contacts_closed = Counter(
            "dialer_contacts_closed",
            "Contacts that reached a final state, by campaign id and state",
            ["campaign", "state"],
            registry=r,
        )
        self.call_results_learned = Counter(
            "dialer_call_results_learned",
            "Call results recorded, by campaign id and how they were learned: live (the "
            "call's own AMI events), pbx (the record the PBX kept of a call whose end no "
            "daemon saw), lost (neither: the PBX lost the call, closed dangling unless "
            "it was seen answered)",
            ["campaign", "source"],
            registry=r,
        )
        self.trunk_errors = Counter(
            "dialer_trunk_errors",
            "Calls the carrier refused (SIP 401, 402, 403, 407: outcome trunk_error), by "
            "campaign id and trunk; they never count against the contact",
            ["campaign", "trunk"],
            registry=r,
        )
        self.campaign_auto_pauses = Counter(
            "dialer_campaign_auto_pauses",
            "Campaigns the dialer paused by itself, by campaign id and reason "
            "(trunk_errors: dialing.trunk_error_pause_after trunk errors in a row)",
            ["campaign", "reason"],
            registry=r,
        )
        self.calls_abandoned = Counter(
            "dialer_calls_abandoned",
            "Answered calls no agent took in time (agent modes), by campaign id; "
            "abandon rate = abandoned / answered",
            ["campaign"],
            registry=r,
        )
        self.pacing_ratio = Gauge(
            "dialer_pacing_ratio",
            "Agent modes: calls placed per free agent right now (progressive 1, power its "
            "dial_ratio, predictive the adaptive ratio), by campaign id; set by the daemon "
            "pacing the campaign",
            ["campaign"],
            registry=r,
        )
        self.abandon_rate = Gauge(
            "dialer_abandon_rate",
            "Agent modes: abandoned / answered calls of the campaign over the rolling window "
            "(24h, 30d), as predictive pacing last read them from the database",
            ["campaign", "window"],
            registry=r,
        )
        self.agents = Gauge(
            "dialer_agents",
            "Members of the agent queues by state (free, ringing, busy, wrapup, paused, "
            "unavailable), from AMI queue events",
            ["queue", "state"],
            registry=r,
        )
        self.agent_state = Gauge(
            "dialer_agent_state",
            "1 for each queue member's current state (free, ringing, busy, wrapup, paused, "
            "unavailable), by queue and agent: the per-agent view of dialer_agents",
            ["queue", "agent", "state"],
            registry=r,
        )
        self._agent_series: set[tuple[str, str]] = set()
        self.agent_pauses = Gauge(
            "dialer_agents_paused",
            "Paused queue members by queue and pause reason (the desk's reason codes, "
            "wrap-up, or none)",
            ["queue", "reason"],
            registry=r,
        )
        self._pause_series: set[tuple[str, str]] = set()
        self.sse_clients = Gauge(
            "dialer_sse_clients", "Open /api/v1/events streams of this daemon", registry=r
        )
        self.sms = Counter(
            "dialer_sms",
            "SMS handed to the provider, by campaign id and result (sent, failed)",
            ["campaign", "result"],
            registry=r,
        )
        self.sms_replies = Counter(
            "dialer_sms_replies",
            "Inbound SMS, by whether they matched a contact waiting for a reply",
            ["matched"],
            registry=r,
        )
        for matched in ("true", "false"):
            self.sms_replies.labels(matched=matched)

        # --- campaigns, from the database (stats.py) ---------------------------------------
        self.campaign_info = Gauge(
            "dialer_campaign_info", "Campaign names (value 1)", ["campaign", "name"], registry=r
        )
        self.campaign_state = Gauge(
            "dialer_campaign_state",
            "1 for the campaign's current state, 0 for the others",
            ["campaign", "state"],
            registry=r,
        )
        self.campaign_max_concurrent = Gauge(
            "dialer_campaign_max_concurrent_calls",
            "The campaign's line limit (max_concurrent_calls, across daemons)",
            ["campaign"],
            registry=r,
        )
        self.campaign_max_cps = Gauge(
            "dialer_campaign_max_calls_per_second",
            "The campaign's rate limit (max_calls_per_second, per daemon)",
            ["campaign"],
            registry=r,
        )
        self.contacts = Gauge(
            "dialer_contacts",
            "Contacts by campaign id and state",
            ["campaign", "state"],
            registry=r,
        )
        self.contacts_due = Gauge(
            "dialer_contacts_due",
            "Contacts due now and not yet dialled (the backlog), by campaign id",
            ["campaign"],
            registry=r,
        )
        self.contacts_due_age = Gauge(
            "dialer_contacts_due_age_seconds",
            "How long the oldest due contact has waited (0 with no backlog), by campaign id",
            ["campaign"],
            registry=r,
        )
        self.webhook_outbox_depth = Gauge(
            "dialer_webhook_outbox_depth",
            "Webhook events waiting for delivery in the outbox table",
            registry=r,
        )
        self.webhook_outbox_age = Gauge(
            "dialer_webhook_outbox_oldest_age_seconds",
            "How long the oldest undelivered webhook event has waited (0 with none)",
            registry=r,
        )
        # --- task flows (flows/executor.py) ----------------------------------------------
        self.task_runs = Counter(
            "dialer_task_runs",
            "Executions of flow tasks other than call, by campaign id, task name and what "
            "they ended with: success, declined, failed, open (a temporary failure, tried "
            "again), interrupted (its daemon died; run again with the same key)",
            ["campaign", "task", "status"],
            registry=r,
        )
        self.task_duration = Histogram(
            "dialer_task_run_duration_seconds",
            "How long one execution of a flow task took, from its lease to its recorded end",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.flow_contacts = Gauge(
            "dialer_flow_contacts",
            "Contacts of campaigns with a flow by campaign id, task and status (the Tasks "
            "overview; status details over the API)",
            ["campaign", "task", "status"],
            registry=r,
        )
        self._flow_series: dict[str, set[tuple[str, str]]] = {}
        self.webhook_deliveries = Counter(
            "dialer_webhook_deliveries", "Webhook events delivered", registry=r
        )
        self.webhook_delivery_failures = Counter(
            "dialer_webhook_delivery_failures",
            "Webhook delivery attempts that failed (each retry counts)",
            registry=r,
        )
        self.webhook_events_dropped = Counter(
            "dialer_webhook_events_dropped",
            "Webhook events never sent: their campaign's own hook was removed after they "
            "were written",
            registry=r,
        )
        # --- recordings (campaigns/recordings.py) -----------------------------------------
        self.recordings = Counter(
            "dialer_recordings",
            "Call recordings: found and noted (stored), not found where this daemon reads "
            "them (missing), deleted by retention (deleted)",
            ["result"],
            registry=r,
        )

        # --- the engine and its database -------------------------------------------------
        self.tick_lag = Histogram(
            "dialer_scheduler_tick_lag_seconds",
            "How late each scheduler tick started, against its schedule",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.tick_duration = Histogram(
            "dialer_scheduler_tick_duration_seconds",
            "How long each scheduler tick's work took (claims, reconciliation)",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.last_tick = Gauge(
            "dialer_scheduler_last_tick_timestamp_seconds",
            "Unix time of the last scheduler tick",
            registry=r,
        )
        self.db_up = Gauge(
            "dialer_db_up", "1 while PostgreSQL answers the daemon, else 0", registry=r
        )
        self.db_pool_connections = Gauge(
            "dialer_db_pool_connections",
            "Connections of the daemon's pool, by state (in_use, idle)",
            ["state"],
            registry=r,
        )
        self.db_pool_max = Gauge(
            "dialer_db_pool_max_connections", "The pool's connection limit", registry=r
        )
        self.stats_refresh_duration = Histogram(
            "dialer_stats_refresh_duration_seconds",
            "How long reading the database gauges took",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.stats_refresh_failures = Counter(
            "dialer_stats_refresh_failures",
            "Database gauge refreshes that failed or timed out",
            registry=r,
        )

    # --- recording: called by the engine -----------------------------------------------
    def pbx_seen(self, pbx: str, limit: int | None) -> None:
        """Create a PBX's series at zero (the daemon's pool, at start)."""
        self.pbx_up.labels(pbx=pbx)
        self.pbx_channels_in_use.labels(pbx=pbx)
        self.pbx_channels_limit.labels(pbx=pbx).set(limit or 0)
        self.pbx_calls_placed.labels(pbx=pbx)
        for outcome in CHANNEL_OUTCOMES["call"]:
            self.pbx_call_outcomes.labels(pbx=pbx, outcome=outcome)

    def pbx_state_changed(self, pbx: str, state: AmiState, *, all_up: bool) -> None:
        """A PBX's AMI connection changed state; ``all_up``: every PBX's is logged in."""
        connected = state is AmiState.CONNECTED
        self.pbx_up.labels(pbx=pbx).set(1 if connected else 0)
        self.ami_up.set(1 if all_up else 0)
        if connected:
            self._ami_logins[pbx] = self._ami_logins.get(pbx, 0) + 1
            if self._ami_logins[pbx] > 1:
                self.ami_reconnects.inc()

    def pbx_call_placed(self, pbx: str) -> None:
        self._fixed_child(self.pbx_calls_placed, pbx).inc()

    def pbx_call_closed(self, pbx: str, outcome: str) -> None:
        self._fixed_child(self.pbx_call_outcomes, pbx, outcome).inc()

    def set_pbx_channels(self, in_use: dict[str, int]) -> None:
        """Calls open on each PBX of the pool, across every daemon (stats.py)."""
        for pbx, count in in_use.items():
            self.pbx_channels_in_use.labels(pbx=pbx).set(count)

    def action_replied(self, action: str, seconds: float) -> None:
        """AMI action observer (AmiClient.observe_actions): the first reply came."""
        self._fixed_child(self.ami_action_duration, _action_label(action)).observe(seconds)

    def action_failed(self, action: str, reason: str) -> None:
        """AMI action observer: no reply (reason: timeout or disconnected)."""
        self.ami_action_failures.labels(action=_action_label(action), reason=reason).inc()

    def call_originated(self, campaign_id: int, trunk: str) -> None:
        self._child(self.calls_originated, campaign_id, trunk).inc()

    def call_answered(self, campaign_id: int, delay_s: float) -> None:
        self._child(self.answer_delay, campaign_id).observe(delay_s)

    def call_ended(self, campaign_id: int, talk_s: float) -> None:
        """An answered call hung up after ``talk_s`` seconds."""
        self._child(self.talk_duration, campaign_id).observe(talk_s)

    def call_abandoned(self, campaign_id: int) -> None:
        """An answered call no agent took (for agent modes)."""
        self._child(self.calls_abandoned, campaign_id).inc()

    def set_pacing(
        self, campaign_id: int, ratio: float, day_abandon_rate: float, month_abandon_rate: float
    ) -> None:
        """An agent-mode campaign's pacing ratio and abandon rates (24 h, 30 days)."""
        self._child(self.pacing_ratio, campaign_id).set(ratio)
        self._child(self.abandon_rate, campaign_id, "24h").set(day_abandon_rate)
        self._child(self.abandon_rate, campaign_id, "30d").set(month_abandon_rate)

    def set_agents(self, queue: str, by_state: dict[str, int]) -> None:
        """A queue's members counted by state."""
        for state, count in by_state.items():
            self.agents.labels(queue=queue, state=state).set(count)

    def set_agent_states(
        self, members: Iterable[tuple[str, str, str, str]], states: Iterable[str]
    ) -> None:
        """Every queue member's state (queue, agent, state, pause reason); members
        gone since the last call lose their series, so the label set stays the roster's."""
        states = tuple(states)
        seen: set[tuple[str, str]] = set()
        paused: dict[tuple[str, str], int] = {}
        for queue, agent, state, reason in members:
            seen.add((queue, agent))
            for each in states:
                self.agent_state.labels(queue=queue, agent=agent, state=each).set(
                    1 if each == state else 0
                )
            if state == "paused":
                key = (queue, reason or "none")
                paused[key] = paused.get(key, 0) + 1
        for queue, agent in self._agent_series - seen:
            for each in states:
                self.agent_state.remove(queue, agent, each)
        self._agent_series = seen
        for key in self._pause_series - set(paused):
            self.agent_pauses.remove(*key)
        for (queue, reason), count in paused.items():
            self.agent_pauses.labels(queue=queue, reason=reason).set(count)
        self._pause_series = set(paused)

    def attempt_closed(self, campaign_id: int, channel: str, outcome: str) -> None:
        self._child(self.attempt_outcomes, campaign_id, channel, outcome).inc()

    def result_learned(self, campaign_id: int, source: str) -> None:
        self._child(self.call_results_learned, campaign_id, source).inc()

    def trunk_error(self, campaign_id: int, trunk: str) -> None:
        self._child(self.trunk_errors, campaign_id, trunk).inc()

    def campaign_auto_paused(self, campaign_id: int, reason: str) -> None:
        self._child(self.campaign_auto_pauses, campaign_id, reason).inc()

    def retry_scheduled(self, campaign_id: int) -> None:
        self._child(self.retries_scheduled, campaign_id).inc()

    def contact_closed(self, campaign_id: int, state: str) -> None:
        self._child(self.contacts_closed, campaign_id, state).inc()

    def task_executed(self, campaign_id: int, task: str, status: str) -> None:
        """A flow task's run ended (or was interrupted)."""
        self._child(self.task_runs, campaign_id, task, status).inc()

    def set_flow_contacts(self, campaign_id: int, counts: dict[tuple[str, str], int]) -> None:
        """A flow campaign's contacts by (task, status); pairs gone since the last call
        are set to 0, so the label set stays the flow's."""
        key = str(campaign_id)
        known = self._flow_series.setdefault(key, set())
        known.update(counts)
        for task, status in known:
            self._child(self.flow_contacts, campaign_id, task, status).set(
                counts.get((task, status), 0)
            )

    def sms_result(self, campaign_id: int, result: str) -> None:
        self._child(self.sms, campaign_id, result).inc()

    def sms_reply(self, matched: bool) -> None:
        self.sms_replies.labels(matched="true" if matched else "false").inc()

    def set_in_flight(self, campaign_id: int, count: int) -> None:
        self._in_flight[str(campaign_id)] = count
        self._child(self.calls_in_flight, campaign_id).set(count)

    def webhook_delivered(self) -> None:
        """A webhook event was delivered (webhooks.py)."""
        self.webhook_deliveries.inc()

    def webhook_delivery_failed(self) -> None:
        """A webhook delivery attempt failed (webhooks.py): counted per attempt."""
        self.webhook_delivery_failures.inc()

    # --- campaigns: called by the stats refresher --------------------------------------
    def track_campaigns(self, campaigns: Iterable[CampaignInfo]) -> None:
        """Set the campaigns' gauges, create their series at zero, drop the others'."""
        keep = set()
        for c in campaigns:
            keep.add(str(c.id))
            old_name = self._names.get(str(c.id))
            if old_name is not None and old_name != c.name:
                self.campaign_info.remove(str(c.id), old_name)
                self._series[str(c.id)].pop((self.campaign_info, (str(c.id), old_name)), None)
            self._names[str(c.id)] = c.name
            self._child(self.campaign_info, c.id, c.name).set(1)
            for state in CAMPAIGN_STATES:
                self._child(self.campaign_state, c.id, state).set(1 if state == c.state else 0)
            self._child(self.campaign_max_concurrent, c.id).set(c.max_concurrent_calls)
            self._child(self.campaign_max_cps, c.id).set(c.max_calls_per_second)
            self.campaign_seen(c.id, c.trunk)
        self.keep_campaigns(keep)

    def set_contacts(
        self,
        campaign_id: int,
        by_state: dict[str, int],
        due: int,
        due_age_s: float,
    ) -> None:
        for state in CONTACT_STATES:
            self._child(self.contacts, campaign_id, state).set(by_state.get(state, 0))
        self._child(self.contacts_due, campaign_id).set(due)
        self._child(self.contacts_due_age, campaign_id).set(due_age_s)

    def keep_campaigns(self, keep: set[str]) -> None:
        """Drop every series of campaigns not in ``keep`` that have nothing in flight.

        This bounds the ``campaign`` label to campaigns that are running,
        paused or recently changed, however long the daemon runs.
        """
        for campaign in list(self._series):
            if campaign in keep or self._in_flight.get(campaign, 0) > 0:
                continue
            for metric, labels in self._series.pop(campaign):
                metric.remove(*labels)
            self._in_flight.pop(campaign, None)
            self._flow_series.pop(campaign, None)
            self._names.pop(campaign, None)

    def campaigns(self) -> set[str]:
        """The campaign ids that have series now."""
        return set(self._series)

    def campaign_seen(self, campaign_id: int, trunk: str) -> None:
        """Create the campaign's counters and histograms at zero, if not there yet.

        A series that first appears with a value hides its first increase from
        rate() and increase(): the earlier it exists at 0, the better.
        """
        if (self.calls_originated, (str(campaign_id), trunk)) in self._series.get(
            str(campaign_id), ()
        ):
            return
        self._child(self.calls_originated, campaign_id, trunk)
        self._child(self.trunk_errors, campaign_id, trunk)
        self._child(self.calls_in_flight, campaign_id)
        for source in RESULT_SOURCES:
            self._child(self.call_results_learned, campaign_id, source)
        for reason in AUTO_PAUSE_REASONS:
            self._child(self.campaign_auto_pauses, campaign_id, reason)
        for channel, outcomes in CHANNEL_OUTCOMES.items():
            for outcome in outcomes:
                self._child(self.attempt_outcomes, campaign_id, channel, outcome)
        for state in CONTACT_FINAL_STATES:
            self._child(self.contacts_closed, campaign_id, state)
        for result in SMS_RESULTS:
            self._child(self.sms, campaign_id, result)
        for metric in (
            self.answer_delay,
            self.talk_duration,
            self.retries_scheduled,
            self.calls_abandoned,
        ):
            self._child(metric, campaign_id)

    def _child(self, metric: Any, campaign_id: int, *labels: str) -> Any:
        campaign = str(campaign_id)
        series = self._series.get(campaign)
        if series is None:
            series = self._series[campaign] = {}
        key = (metric, (campaign, *labels))
        child = series.get(key)
        if child is None:
            child = series[key] = metric.labels(*key[1])
        return child

    def _fixed_child(self, metric: Any, *labels: str) -> Any:
        key = (metric, labels)
        child = self._fixed.get(key)
        if child is None:
            child = self._fixed[key] = metric.labels(*labels)
        return child

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _action_label(action: str) -> str:
    return _AMI_ACTION_NAMES.get(action.lower(), "other")
