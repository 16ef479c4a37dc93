"""Prometheus metrics of one daemon, in a registry of its own (tests run several)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)

from .ami import AmiState
from .outcomes import Outcome

# *_created series double every counter for a timestamp nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ami_up = Gauge(
            "dialer_ami_up",
            "1 while the AMI connection is logged in, else 0",
            registry=self.registry,
        )
        self.ami_reconnects = Counter(
            "dialer_ami_reconnects",
            "AMI logins after the first (each one a recovered outage)",
            registry=self.registry,
        )
        self._ami_logins = 0
        self.attempt_outcomes = Counter(
            "dialer_attempt_outcomes",
            "Attempts closed, by normalised outcome",
            ["outcome"],
            registry=self.registry,
        )
        # Bounded label set: pre-create every outcome so rates start at 0.
        for outcome in [*Outcome, "sent"]:
            self.attempt_outcomes.labels(outcome=str(outcome))

        self.calls_originated = Counter(
            "dialer_calls_originated",
            "Originates sent to Asterisk, by campaign id",
            ["campaign"],
            registry=self.registry,
        )
        self.calls_in_flight = Gauge(
            "dialer_calls_in_flight",
            "Attempts being dialled or followed right now, by campaign id",
            ["campaign"],
            registry=self.registry,
        )
        self.contacts_closed = Counter(
            "dialer_contacts_closed",
            "Contacts that reached a final state, by campaign id and state",
            ["campaign", "state"],
            registry=self.registry,
        )
        self.sms_sent = Counter(
            "dialer_sms",
            "SMS handed to the provider, by campaign id and result (sent, failed)",
            ["campaign", "result"],
            registry=self.registry,
        )

    def ami_state_changed(self, state: AmiState) -> None:
        self.ami_up.set(1 if state is AmiState.CONNECTED else 0)
        if state is AmiState.CONNECTED:
            self._ami_logins += 1
            if self._ami_logins > 1:
                self.ami_reconnects.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
