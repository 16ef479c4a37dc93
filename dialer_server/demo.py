"""The demo: a small campaign run through a call strategy, driven over the HTTP API.

It does what a CRM does against a running daemon (scripts/demo starts one on the
local stack): store a call strategy, create a campaign, put a number on its
do-not-call list, import a few contacts, start the campaign, and follow it over
the API until it completes, printing its progress as it goes and then the path
of each contact, attempt by attempt.

The far end is the stack's sipp, which picks a behaviour from the dialled
number's last three digits (scripts/sipp/farend.xml): each contact's numbers are
chosen so that the strategy's rules all come into play (an answer, busy then a
retry, the next phone, a ring-out, a wrong number, congestion until the
attempts run out, an SMS instead of a call, a do-not-call number). Nothing here
is faked: every call goes through Asterisk, every result is recorded by the
engine. The demo checks that each contact ended where the strategy says it
should and says so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import aiohttp

from .config import Config, parse_api_tokens
from .errors import DialerError

# Short delays, so the whole campaign takes well under a minute; the ring
# timeout stays at the 15 s regulations ask for.
STRATEGY: dict[str, Any] = {
    "name": "demo",
    "description": "Phone 1 twice, then phone 2 once; an SMS when phone 2 rings out.",
    "caps": {"per_contact": 4},
    "sms": {
        "text": "Hello {param1}, we tried to call you. Reply and we call you back.",
        "close_state": "sms_sent",
    },
    "on": {
        "busy": {"action": "retry", "delay_s": 5},
        "congestion": {"action": "retry", "delay_s": 3},
        "no_answer": {"action": "next"},
        # A person who pressed decline is not called again today.
        "rejected": {
            "action": "close",
            "state": "not_connected",
            "status": "declined",
            "status_detail": "declined_call",
        },
    },
    "attempts": [
        {"phone": 1, "max_tries": 2, "ring_timeout_s": 15},
        {"phone": 2, "max_tries": 1, "ring_timeout_s": 15, "on": {"no_answer": {"action": "sms"}}},
    ],
}
EVERY_DAY = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
DO_NOT_CALL = "+12025550999"


@dataclasses.dataclass(frozen=True)
class DemoContact:
    name: str
    phones: tuple[str, ...]
    what: str
    expected: str  # the final state the strategy leads to


CONTACTS = (
    DemoContact("alice", ("+12025550202",), "answers", "connected"),
    DemoContact(
        "bob", ("+12025550486", "+12025550205"), "busy twice, answers on phone 2", "connected"
    ),
    DemoContact(
        "carol", ("+12025550180", "+12025550181"), "rings out on both phones: SMS", "sms_sent"
    ),
    DemoContact(
        "dave", ("+12025550404", "+12025550201"), "wrong number, then phone 2", "connected"
    ),
    DemoContact(
        "erin",
        ("+12025550503", "+12025551503"),
        "congestion until no try is left",
        "retries_completed",
    ),
    DemoContact("grace", ("+12025550603",), "declines the call (603)", "not_connected"),
    DemoContact("frank", (DO_NOT_CALL,), "on the do-not-call list", "dnc_listed"),
)
TIMEOUT_S = 120.0


class DemoApi:
    """The daemon's HTTP API, as a CRM uses it."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session = session
        self.base = base.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = ()) -> Any:
        async with self.session.request(
            method, f"{self.base}/api/v1{path}", json=body, headers=self.headers
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400 and resp.status not in ok:
                error = data.get("error", {}) if isinstance(data, dict) else {}
                raise DialerError(f"{method} {path}: {resp.status} {error.get('message') or data}")
            return data


async def run_demo(config: Config, out: TextIO) -> bool:
    """Run the demo campaign against the daemon of ``config``; True if every contact
    ended where the strategy says it should."""
    token = next((t.token for t in parse_api_tokens(config.api.tokens) if t.scope == "write"), None)
    if token is None:
        raise DialerError("the demo needs an API token with write scope (api.tokens)")
    base = f"http://{config.http.host}:{config.http.port}"
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        api = DemoApi(session, base, token)
        try:
            campaign_id = await _set_up(api, out)
        except aiohttp.ClientError as exc:
            raise DialerError(f"cannot reach the daemon's API at {base}: {exc}") from None
        await _follow(api, campaign_id, out)
        return await _report(api, campaign_id, out)


async def _set_up(api: DemoApi, out: TextIO) -> int:
    # The same definition again stores nothing: re-running the demo reuses it.
    strategy = await api.call("PUT", "/strategies/demo", STRATEGY, ok=(404,))
    if "error" in strategy:  # the first run: no such strategy yet
        strategy = await api.call("POST", "/strategies", STRATEGY)
    name = f"demo {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
    campaign = await api.call(
        "POST",
        "/campaigns",
        {
            "name": name,
            "strategy": "demo",
            "max_concurrent_calls": 10,
            "calling_window": {"hours": EVERY_DAY},
        },
    )
    campaign_id = int(campaign["id"])
    await api.call("POST", f"/campaigns/{campaign_id}/dnc", {"numbers": [DO_NOT_CALL]})
    rows = [
        {
            "external_id": contact.name,
            "param1": contact.name.capitalize(),
            **{f"phone{i}": phone for i, phone in enumerate(contact.phones, start=1)},
        }
        for contact in CONTACTS
    ]
    report = await api.call("POST", f"/campaigns/{campaign_id}/contacts", {"contacts": rows})
    await api.call("POST", f"/campaigns/{campaign_id}/start")
    print(
        f"Campaign {campaign_id} ({name!r}): strategy {strategy['name']} "
        f"v{strategy['version']}, {report['inserted']} contacts, started.",
        file=out,
    )
    print(f"  {STRATEGY['description']}", file=out)
    for contact in CONTACTS:
        print(f"  {contact.name:<6} {' / '.join(contact.phones):<28} {contact.what}", file=out)
    print(file=out, flush=True)
    return campaign_id


async def _follow(api: DemoApi, campaign_id: int, out: TextIO) -> None:
    """Print the contacts by state whenever they change, until the campaign completes."""
    started = time.monotonic()
    shown = ""
    while True:
        campaign = await api.call("GET", f"/campaigns/{campaign_id}")
        counts = campaign["contacts"]
        line = ", ".join(f"{n} {state}" for state, n in sorted(counts["by_state"].items()))
        line += f"; calls up: {counts['open_attempts']}"
        if line != shown:
            print(f"  {time.monotonic() - started:5.1f} s  {line}", file=out, flush=True)
            shown = line
        if campaign["state"] == "completed":
            return
        if time.monotonic() - started > TIMEOUT_S:
            raise DialerError(f"the demo campaign did not complete in {TIMEOUT_S:.0f} s")
        await asyncio.sleep(1.0)


async def _report(api: DemoApi, campaign_id: int, out: TextIO) -> bool:
    page = await api.call("GET", f"/campaigns/{campaign_id}/contacts?limit=100")
    by_name = {row["external_id"]: row for row in page["items"]}
    header = ("contact", "attempts (phone: outcome, cause)", "final state", "expected")
    rows = []
    all_ok = True
    for contact in CONTACTS:
        row = by_name[contact.name]
        attempts = (await api.call("GET", f"/contacts/{row['id']}/attempts"))["items"]
        path = " > ".join(_attempt(a) for a in attempts) or "none"
        final = f"{row['state']}/{row['status']}/{row['status_detail']}"
        ok = row["state"] == contact.expected
        all_ok &= ok
        rows.append((contact.name, path, final, contact.expected + ("" if ok else "  <-- ?")))
    print(file=out)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(), file=out)
    print(file=out)
    print(
        "every contact ended where the strategy says"
        if all_ok
        else "SOME CONTACTS DID NOT END WHERE THE STRATEGY SAYS",
        file=out,
        flush=True,
    )
    return all_ok


def _attempt(attempt: dict[str, Any]) -> str:
    where = "sms" if attempt["channel"] == "sms" else f"p{attempt['phone_slot']}"
    cause = f" {attempt['hangup_cause']}" if attempt.get("hangup_cause") is not None else ""
    return f"{where}: {attempt['outcome'] or attempt['state']}{cause}"
