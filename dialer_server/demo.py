"""One demo call per outcome through the real Asterisk of the local stack.

The far end is the stack's sipp, which picks its behaviour from the dialled
number's last three digits (scripts/sipp/farend.xml). Each call is a real
attempt of a "demo" campaign: written to PostgreSQL before the Originate,
followed by its ChannelId, closed with its normalised outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any, TextIO

from .config import Config
from .db.migrations import migrate
from .db.pool import create_pool
from .engine import store
from .errors import DialerError
from .telephony.ami import AmiClient
from .telephony.originate import CallRequest, CallResult, CallTracker
from .telephony.outcomes import Outcome

# Shortest ring timeout regulations allow; the no-answer call rings this long.
DEMO_RING_TIMEOUT_S = 15


@dataclasses.dataclass(frozen=True)
class DemoCall:
    label: str
    number: str
    expected: Outcome


DEMO_CALLS = (
    DemoCall("answers, talks 2 s", "12025550202", Outcome.ANSWERED),
    DemoCall("busy (486)", "12025550486", Outcome.BUSY),
    DemoCall("rings, nobody answers", "12025550180", Outcome.NO_ANSWER),
    DemoCall("congestion (503)", "12025550503", Outcome.CONGESTION),
    DemoCall("wrong number (404)", "12025550404", Outcome.INVALID_NUMBER),
    DemoCall("codec refused (488)", "12025550488", Outcome.FAILED),
    DemoCall("declined (603)", "12025550603", Outcome.REJECTED),
    DemoCall("trunk refused (403)", "12025559403", Outcome.TRUNK_ERROR),
)


async def run_demo(config: Config, out: TextIO) -> bool:
    """Place the demo calls, print what happened; True if every outcome was as expected."""
    pool = await create_pool(config.database)
    ami = AmiClient(config.ami)
    tracker = CallTracker()
    ami.subscribe(tracker.handle_event)
    stop = asyncio.Event()
    ami_task = asyncio.create_task(ami.run(stop), name="ami")
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        await _wait_connected(ami, ami_task)
        async with pool.acquire() as conn:
            campaign_id = await store.upsert_campaign(
                conn,
                "demo",
                trunk=config.dialing.trunk,
                caller_id=None,
                ring_timeout_s=DEMO_RING_TIMEOUT_S,
            )
        print(
            f"Dialling {len(DEMO_CALLS)} demo calls through Asterisk "
            f"({config.ami.host}:{config.ami.port}, trunk {config.dialing.trunk})...",
            file=out,
            flush=True,
        )
        results = await asyncio.gather(
            *(_place(pool, ami, tracker, config, campaign_id, call) for call in DEMO_CALLS)
        )
        return _report(results, out)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ami_task, 5)
        await pool.close()


async def _wait_connected(ami: AmiClient, ami_task: asyncio.Task[None]) -> None:
    waiter = asyncio.create_task(ami.wait_connected())
    done, _ = await asyncio.wait(
        {waiter, ami_task}, timeout=15, return_when=asyncio.FIRST_COMPLETED
    )
    waiter.cancel()
    if ami_task in done:
        ami_task.result()  # raises the login error
    if waiter not in done:
        raise DialerError(f"cannot reach Asterisk AMI: {ami.last_error or 'timed out'}")


async def _place(
    pool: Any,
    ami: AmiClient,
    tracker: CallTracker,
    config: Config,
    campaign_id: int,
    call: DemoCall,
) -> tuple[DemoCall, dict[str, Any]]:
    async with pool.acquire() as conn:
        contact_id = await store.upsert_contact(
            conn, campaign_id, f"demo-{call.number}", call.number
        )
        attempt_id = await store.insert_attempt(
            conn, campaign_id=campaign_id, contact_id=contact_id, number=call.number, phone_slot=1
        )

    async def sent() -> None:
        async with pool.acquire() as conn:
            await store.mark_attempt_sent(conn, attempt_id)

    async def answered() -> None:
        async with pool.acquire() as conn:
            await store.mark_attempt_answered(conn, attempt_id)

    result: CallResult = await tracker.place_call(
        ami,
        CallRequest(
            attempt_id=attempt_id,
            number=call.number,
            trunk=config.dialing.trunk,
            context=config.dialing.context,
            extension=config.dialing.extension,
            ring_timeout_s=DEMO_RING_TIMEOUT_S,
            caller_id=config.dialing.caller_id,
        ),
        on_sent=sent,
        on_answered=answered,
    )
    async with pool.acquire() as conn:
        await store.record_attempt_result(conn, result)
        row = await store.get_attempt(conn, attempt_id)
    assert row is not None
    return call, row


def _report(results: list[tuple[DemoCall, dict[str, Any]]], out: TextIO) -> bool:
    header = ("far end", "number", "outcome", "expected", "cause", "talk s", "attempt id")
    rows = []
    all_ok = True
    for call, row in results:
        ok = row["outcome"] == call.expected.value
        all_ok &= ok
        cause = (
            f"{row['hangup_cause']} {row['hangup_cause_text']}"
            if row["hangup_cause"] is not None
            else f"reason {row['originate_reason']}"
        )
        talk = ""
        if row["answered_at"] and row["ended_at"]:
            talk = f"{(row['ended_at'] - row['answered_at']).total_seconds():.1f}"
        rows.append(
            (
                call.label,
                call.number,
                row["outcome"],
                call.expected.value + ("" if ok else "  <-- MISMATCH"),
                cause,
                talk,
                str(row["id"]),
            )
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(), file=out)
    print("all outcomes as expected" if all_ok else "SOME OUTCOMES DIFFER FROM EXPECTED", file=out)
    return all_ok
