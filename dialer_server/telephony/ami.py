"""The AMI connection: login, event dispatch, reconnects, and bounded actions.

panoramisk does the protocol; this module owns the connection's life, because
panoramisk's own reconnect re-sends actions that got no response (an Originate
could be sent twice), retries at a fixed delay, never checks its pings, and
leaves the futures of actions cut off by a dropped link pending forever. Here
each connection is a fresh panoramisk Manager with its reconnect disabled:

- ``run()`` connects, logs in, and reconnects with capped exponential backoff;
- a Ping watchdog notices a peer that stopped answering without closing TCP;
- every action has a timeout, and actions in flight fail with AmiDisconnected
  when the link drops — they are never re-sent (PostgreSQL state decides what
  is sent again);
- events go through our own queue to subscribers, so a failing handler is
  logged, not lost inside panoramisk.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
import urllib.parse
import uuid
from collections.abc import Callable, Coroutine, Mapping
from enum import StrEnum
from typing import Any, Protocol

import panoramisk
import panoramisk.actions
import panoramisk.ami_protocol

from ..config import AmiConfig
from ..errors import AmiAuthError, AmiDisconnected, AmiError

logger = logging.getLogger(__name__)

# What an AMI peer may make us hold while it has not finished a line or a message:
# beyond these it is broken or hostile, and the link is dropped (then reconnected, with
# backoff, like any lost link). Asterisk's messages are far smaller: a line is a header,
# a message one event or reply (we send no Command whose output could be long).
MAX_AMI_LINE_BYTES = 64 * 1024
MAX_AMI_MESSAGE_BYTES = 1024 * 1024

Event = Any  # panoramisk.Message: a case-insensitive dict of AMI headers
EventHandler = Callable[[Event], None]


class AmiState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"


class ActionObserver(Protocol):
    """Told how each action went (the daemon's metrics)."""

    def action_replied(self, action: str, seconds: float) -> None:
        """Asterisk's first reply to ``action`` came ``seconds`` after it was sent."""

    def action_failed(self, action: str, reason: str) -> None:
        """No reply: ``reason`` is "timeout" or "disconnected"."""


class _TimedAction(panoramisk.actions.Action):  # type: ignore[misc]
    """A panoramisk action that notes when its first reply arrives.

    The first reply is Asterisk's answer to the action itself: for an async
    Originate, "successfully queued", long before the call's outcome.

    Built and written without panoramisk's per-header calls (its case-insensitive
    dict filled one ``__setitem__`` at a time, its id generator): every call sends an
    Originate. The same store, id header and text as panoramisk's. (A call's DBDel, whose
    reply nobody awaits, needs none of it: ``_BoundedProtocol.post``.)
    """

    def __init__(
        self,
        action: Mapping[str, Any],
        on_first_reply: Callable[[], None],
        as_list: bool | None = None,
    ) -> None:
        store = {key.lower(): (key, value) for key, value in action.items()}
        if "actionid" not in store:
            store["actionid"] = ("ActionID", f"{_ACTION_ID_PREFIX}{next(_action_numbers)}")
        self._store = store
        self.as_list = as_list
        self.responses: list[Any] = []
        self.future = asyncio.get_running_loop().create_future()
        self._on_first_reply = on_first_reply
        self._multi = False

    def __str__(self) -> str:
        lines: list[str] = []
        for key, value in sorted(self._store.values()):
            if isinstance(value, list | tuple):
                lines.extend(f"{key}: {item}" for item in value)
            else:
                lines.append(f"{key}: {value}")
        lines.append(_EOL)
        return _EOL.join(lines)

    @property
    def id(self) -> Any:
        return self._store["actionid"][1]

    action_id = id

    def add_message(self, message: Any) -> Any:
        """panoramisk's ``Action.add_message`` (the same results, the same future),
        with whether the reply has several messages worked out once, from its first
        one, where panoramisk works it out twice for every message."""
        responses = self.responses
        responses.append(message)
        if len(responses) == 1:
            self._on_first_reply()
            self._multi = panoramisk.actions.Action.multi.fget(self)
        multi = self._multi
        store = message._store
        completed = (
            store.get("event", _NO_HEADER)[1].endswith("Complete")
            or store.get("subevent", _NO_HEADER)[1] in ("End", "Exec")
            or store.get("response", _NO_HEADER)[1] in ("Success", "Error", "Fail", "Failure")
            or not multi
        )
        if not completed or self.future.done():
            return None
        if not multi:
            self.future.set_result(responses[0])
            return True
        if len(responses) > 1:
            self.future.set_result(responses)
            return True
        return False


# Action ids unique to this process, as panoramisk's: a prefix of its own, a counter.
_ACTION_ID_PREFIX = f"action/{uuid.uuid4()}/"
_action_numbers = itertools.count(1)

_EOL = "\r\n"
# Responses whose last line is a body, not a header: left to panoramisk's own parser.
_HAS_BODY = ("Response: Follows", "Response: Fail")


def parse_message(text: str) -> Any:
    """One AMI message (its lines, without the blank line ending it) as panoramisk's
    ``Message``, or None when it is neither an event nor a response.

    The same Message as ``panoramisk.Message.from_line`` gives, built in one pass
    without its per-header Python calls (a case-insensitive dict filled one
    ``__setitem__`` at a time): every event of every call goes through here. The
    rare message panoramisk reads in a way of its own (a body, one header name in
    two spellings) is left to panoramisk.
    """
    if text.startswith(_HAS_BODY):
        return panoramisk.Message.from_line(text)
    store: dict[str, tuple[str, Any]] = {}
    for line in text.split(_EOL):
        key, separator, value = line.partition(": ")
        if not separator:
            continue
        lower = key.lower()
        old = store.get(lower)
        if old is None:
            store[lower] = (key, value)
        elif old[0] == key:
            # A repeated header (Variable, ChanVariable...): its values as a list.
            values = old[1]
            store[lower] = (key, [*values, value] if isinstance(values, list) else [values, value])
        else:
            return panoramisk.Message.from_line(text)
    if store.get("event", _NO_HEADER)[0] != "Event" and (
        store.get("response", _NO_HEADER)[0] != "Response"
    ):
        return None
    result = store.get("result")
    if result is not None:
        key, value = result
        store["result"] = (
            key,
            [_unquoted(item) for item in value] if isinstance(value, list) else _unquoted(value),
        )
    store["content"] = ("content", "")
    message = panoramisk.Message.__new__(panoramisk.Message)
    message._store = store
    message.manager = None
    return message


def _unquoted(value: str) -> str:
    return urllib.parse.unquote(value).strip()


_NO_HEADER = ("", "")


class _Corked:
    """A transport whose writes of one turn of the event loop leave in one send.

    The calls a claim hands out write their Originates one after the other, and the
    results of a batch their ``DBDel``: one system call for them all instead of one
    each. The order of the writes is kept; ``close`` sends what is pending first, and
    ``abort`` drops it, as the transport does with its own buffer.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        data, self._pending = self._pending, []
        if data and not self._transport.is_closing():
            self._transport.write(b"".join(data))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _BoundedProtocol(panoramisk.ami_protocol.AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol, with a faster parser (``parse_message``), writes sent
    together (``_Corked``) and a bound on what an unfinished line or message may buffer.

    panoramisk keeps the unfinished end of the stream and appends every read to it: a
    peer that never sends the blank line ending a message would grow it without end.
    Replies still go to their actions and events to the manager as panoramisk does
    (``handle_message``).
    """

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(_Corked(transport))
        # Actions whose reply nobody awaits (``post``): what to call with the reply's
        # arrival (True) or the link's loss (False), by ActionID.
        self.posted: dict[str, Callable[[bool], None]] = {}

    def post(self, action: Mapping[str, str], on_reply: Callable[[bool], None]) -> None:
        """Write an action whose reply is one message, no Future or Action built for it:
        ``on_reply(True)`` once it is answered (``handle_message``)."""
        action_id = f"{_ACTION_ID_PREFIX}{next(_action_numbers)}"
        lines = [f"{key}: {value}" for key, value in action.items() if key.lower() != "actionid"]
        lines.append(f"ActionID: {action_id}{_EOL}{_EOL}")
        self.posted[action_id] = on_reply
        self.transport.write(_EOL.join(lines).encode(getattr(self, "encoding", "ascii")))

    def drop_posted(self) -> None:
        """The link is gone: every posted action still unanswered never will be."""
        posted, self.posted = self.posted, {}
        for on_reply in posted.values():
            on_reply(False)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        text = data.decode(getattr(self, "encoding", "ascii"), "ignore")
        if getattr(self, "version", None) is None and text.startswith("Asterisk Call Manager/"):
            self.version = text.partition(_EOL)[0].partition("/")[2].strip()
        if self.queue:
            text = self.queue.popleft() + text
        messages = text.split(_EOL + _EOL)
        self.queue.append(messages.pop())
        for block in messages:
            message = parse_message(block.strip())
            if message is not None:
                self.handle_message(message)
        # The unfinished message panoramisk keeps (text after the last blank line).
        pending = self.queue[0] if self.queue else ""
        line = len(pending) - pending.rfind("\n") - 1
        if line > MAX_AMI_LINE_BYTES:
            self._refuse(f"a line longer than {MAX_AMI_LINE_BYTES} bytes")
        elif len(pending) > MAX_AMI_MESSAGE_BYTES:
            self._refuse(f"a message longer than {MAX_AMI_MESSAGE_BYTES} bytes")

    def handle_message(self, message: Any) -> None:
        """panoramisk's: a reply goes to its action (dropped from those awaiting one
        once complete), an event to the manager, a Shutdown closes the link; read
        from the message's store directly, without its case-insensitive lookups."""
        store = message._store
        command_id = store.get("commandid")
        action_id = store.get("actionid")
        if action_id is not None and self.posted:
            on_reply = self.posted.pop(action_id[1], None)
            if on_reply is not None:
                on_reply(True)
                return
        responses = self.responses
        response = None
        if responses:
            key = command_id if command_id is not None else action_id
            if key is not None:
                response = responses.get(key[1])
            if response is None and action_id is not None and action_id[1]:
                response = responses.get(action_id[1])
        if response is not None:
            if response.add_message(message):
                responses.pop(response.id)
                if response.action_id:
                    responses.pop(response.action_id, None)
        elif "event" in store:
            if store["event"][1].lower() == "shutdown":
                self.connection_lost(message)
            self.factory.dispatch(message)

    def _refuse(self, what: str) -> None:
        logger.warning(
            "AMI peer sent %s without ending it: dropping the connection",
            what,
            extra={"action": "ami_protocol"},
        )
        self.queue.clear()
        # abort(): drop what is buffered, do not wait to flush; connection_lost follows.
        self.transport.abort()


class _Manager(panoramisk.Manager):  # type: ignore[misc]
    """panoramisk's Manager minus its reconnect and its unchecked pings."""

    def __init__(
        self,
        on_lost: Callable[[Any], None],
        on_event: Callable[[Any, Event], None],
        **config: Any,
    ) -> None:
        super().__init__(**config)
        self._on_lost = on_lost
        self._on_event = on_event

    def dispatch(self, event: Event) -> list[str]:
        """Every event to ``on_event``: the one subscriber, without panoramisk's match of
        each event's name against each registered pattern."""
        event.manager = self
        self._on_event(self, event)
        return ["*"]

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        # A failed connect is reported to AmiClient.run by the awaited task;
        # panoramisk would otherwise schedule a reconnect of its own.
        if f.cancelled() or f.exception() is not None:
            return
        super().connection_made(f)

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        self._on_lost(exc)

    def ping(self) -> None:
        """Disabled: panoramisk's ping never checks the reply; AmiClient runs its own watchdog."""


class AmiClient:
    def __init__(self, config: AmiConfig) -> None:
        self.config = config
        self.state = AmiState.DISCONNECTED
        self.reconnects = 0
        self.last_error: str | None = None
        self.asterisk_version: str | None = None
        self._manager: _Manager | None = None
        self._lost: asyncio.Event | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._handlers: list[EventHandler] = []
        self._connected = asyncio.Event()
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._state_listeners: list[Callable[[AmiState], None]] = []
        self._action_observers: list[ActionObserver] = []
        self._logged_in_once = False

    # --- subscriptions -----------------------------------------------------------
    def subscribe(self, handler: EventHandler) -> None:
        """Call ``handler(event)`` for every AMI event, from the dispatch task."""
        self._handlers.append(handler)

    def on_state_change(self, listener: Callable[[AmiState], None]) -> None:
        self._state_listeners.append(listener)

    def observe_actions(self, observer: ActionObserver) -> None:
        """Tell ``observer`` the reply time, or the failure, of every action sent."""
        self._action_observers.append(observer)

    @property
    def connected(self) -> bool:
        return self.state is AmiState.CONNECTED

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    # --- the connection's life ---------------------------------------------------
    async def run(self, stop: asyncio.Event, *, first_auth_fatal: bool = True) -> None:
        """Stay connected until ``stop`` is set.

        A refused login on the very first connection raises AmiAuthError (a
        configuration error); later ones are retried like any other failure.
        """
        delay = self.config.reconnect_min_s
        dispatcher = asyncio.create_task(self._dispatch(), name="ami-dispatch")
        try:
            while not stop.is_set():
                try:
                    await self._connect()
                except AmiAuthError as exc:
                    self._set_state(AmiState.DISCONNECTED, str(exc))
                    if first_auth_fatal and not self._logged_in_once:
                        raise
                    logger.error(str(exc), extra={"action": "ami_login"})
                except (TimeoutError, OSError, AmiError) as exc:
                    reason = _describe(exc)
                    if self.last_error != reason:
                        logger.warning(
                            "AMI connect to %s:%s failed: %s",
                            self.config.host,
                            self.config.port,
                            reason,
                            extra={"action": "ami_connect"},
                        )
                    self._set_state(AmiState.DISCONNECTED, reason)
                else:
                    delay = self.config.reconnect_min_s
                    await self._watch(stop)
                self._teardown()
                if stop.is_set():
                    break
                # Full jitter: many dialers restarting with one PBX must not
                # reconnect in lock-step.
                await _sleep_or_stop(stop, random.uniform(delay / 2, delay))
                delay = min(delay * 2, self.config.reconnect_max_s)
                self.reconnects += 1
        finally:
            self._teardown()
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher

    async def _connect(self) -> None:
        self._set_state(AmiState.CONNECTING)
        self._lost = lost = asyncio.Event()
        manager = _Manager(
            on_lost=lambda exc: lost.set(),
            on_event=self._enqueue,
            host=self.config.host,
            port=self.config.port,
            loop=asyncio.get_running_loop(),
            # Our watchdog pings; panoramisk's ping is disabled anyway.
            ping_delay=10**6,
            # Login is ours (below), so that a refused secret is an error we see.
            forgetable_actions=("ping", "login"),
            protocol_factory=_BoundedProtocol,
        )
        self._manager = manager
        await asyncio.wait_for(manager.connect(), self.config.connect_timeout_s)
        reply = await self._send(
            {
                "Action": "Login",
                "Username": self.config.username,
                "Secret": self.config.secret,
                "Events": "on",
            },
            self.config.connect_timeout_s,
        )
        if reply[0].get("Response") != "Success":
            raise AmiAuthError(
                f"AMI login refused for user {self.config.username!r} at "
                f"{self.config.host}:{self.config.port}: "
                f"{reply[0].get('Message') or 'authentication failed'} "
                "(check ami.username / ami.secret against manager.conf)"
            )
        self.asterisk_version = getattr(manager.protocol, "version", None)
        was_down = self._logged_in_once
        self._logged_in_once = True
        self._set_state(AmiState.CONNECTED)
        logger.info(
            "AMI %s to %s:%s",
            "reconnected" if was_down else "connected",
            self.config.host,
            self.config.port,
            extra={"action": "ami_connect"},
        )

    async def _watch(self, stop: asyncio.Event) -> None:
        """Return when the link is lost, stops answering pings, or we stop."""
        assert self._lost is not None
        lost = self._lost
        while not stop.is_set() and not lost.is_set():
            await _first_of(stop, lost, timeout=self.config.ping_interval_s)
            if stop.is_set() or lost.is_set():
                break
            try:
                await self._send({"Action": "Ping"}, self.config.ping_interval_s)
            except (TimeoutError, AmiError):
                logger.warning(
                    "AMI peer stopped answering pings; reconnecting",
                    extra={"action": "ami_watchdog"},
                )
                break
        if lost.is_set() and not stop.is_set():
            logger.warning("AMI connection lost", extra={"action": "ami_disconnect"})

    def _teardown(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            with contextlib.suppress(Exception):
                manager.close()
            if isinstance(manager.protocol, _BoundedProtocol):
                manager.protocol.drop_posted()
        for fut in self._pending:
            if not fut.done():
                fut.set_exception(AmiDisconnected("AMI connection lost before the reply"))
        self._pending.clear()
        if self.state is not AmiState.DISCONNECTED:
            self._set_state(AmiState.DISCONNECTED, self.last_error or "connection closed")

    def _set_state(self, state: AmiState, error: str | None = None) -> None:
        if error is not None:
            self.last_error = error
        if state is AmiState.CONNECTED:
            self.last_error = None
            self._connected.set()
        else:
            self._connected.clear()
        if state is not self.state:
            self.state = state
            for listener in self._state_listeners:
                listener(state)

    # --- actions ---------------------------------------------------------------------
    async def send_action(
        self,
        action: Mapping[str, str | list[str]],
        timeout: float | None = None,
        *,
        as_list: bool | None = None,
    ) -> list[Any]:
        """Send an action and return every message of its reply.

        Raises AmiDisconnected when there is no connection or it drops before
        the reply, TimeoutError after ``timeout`` (default
        ami.action_timeout_s). Never retried or re-sent. ``as_list=False``: the
        reply is one message (panoramisk guesses otherwise from some replies'
        text, QueueAdd's "Added interface to queue" among them, and would wait
        for more).
        """
        return await self.begin_action(action, timeout, as_list=as_list)

    def begin_action(
        self,
        action: Mapping[str, str | list[str]],
        timeout: float | None = None,
        *,
        as_list: bool | None = None,
    ) -> Coroutine[Any, Any, list[Any]]:
        """``send_action`` in two steps: the action is written now (AmiDisconnected is
        raised now), its reply is what the returned coroutine gives once awaited, with
        the same errors. Who must know the action left before the reply comes (an
        Originate) needs no task of its own for it; the coroutine must be awaited.
        """
        if not self.connected:
            raise AmiDisconnected()
        name, fut = self._write(action, as_list)
        return self._reply(name, fut, timeout or self.config.action_timeout_s)

    def post_action(self, action: Mapping[str, str]) -> None:
        """Send an action whose reply nobody waits for (best effort: a ``DBDel``), and
        whose reply is one message.

        Its reply is counted by the action observers like any other; a lost link
        fails it with the others in flight (``_teardown``), logged by nobody: whoever
        posts it has a fallback. Asterisk answers every action, so nothing is left
        waiting while the link lives. Raises AmiDisconnected when there is no link.
        """
        if not self.connected:
            raise AmiDisconnected()
        manager = self._manager
        if manager is None or manager.protocol is None:
            raise AmiDisconnected()
        name = str(action.get("Action", ""))
        replied = self._replied(name)

        def on_reply(answered: bool) -> None:
            if answered:
                replied()
            else:
                self._action_failed(name, "disconnected")

        manager.protocol.post(action, on_reply)

    def _replied(self, name: str) -> Callable[[], None]:
        """What tells the observers an action sent now was answered (its reply time)."""
        sent = time.monotonic()

        def replied() -> None:
            for observer in self._action_observers:
                observer.action_replied(name, time.monotonic() - sent)

        return replied

    def _write(
        self, action: Mapping[str, str | list[str]], as_list: bool | None
    ) -> tuple[str, asyncio.Future[Any]]:
        """Write an action; its name and the future of its reply (in ``_pending`` until
        it is answered or the link drops). Raises AmiDisconnected when there is no link."""
        manager = self._manager
        if manager is None or manager.protocol is None:
            raise AmiDisconnected()
        name = str(action.get("Action", ""))
        replied = self._replied(name)
        # protocol.send() sets the action's as_list from its own argument.
        fut = manager.send_action(_TimedAction(action, replied, as_list), as_list=as_list)
        self._pending.add(fut)
        return name, fut

    async def _send(
        self,
        action: Mapping[str, str | list[str]],
        timeout: float,
        as_list: bool | None = None,
    ) -> list[Any]:
        name, fut = self._write(action, as_list)
        return await self._reply(name, fut, timeout)

    async def _reply(self, name: str, fut: asyncio.Future[Any], timeout: float) -> list[Any]:
        """The reply of an action written by ``_write``, within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                reply = await fut
        except TimeoutError:
            self._action_failed(name, "timeout")
            raise
        except AmiDisconnected:
            self._action_failed(name, "disconnected")
            raise
        finally:
            self._pending.discard(fut)
        return reply if isinstance(reply, list) else [reply]

    def _action_failed(self, name: str, reason: str) -> None:
        for observer in self._action_observers:
            observer.action_failed(name, reason)

    # --- events ------------------------------------------------------------------------
    def _enqueue(self, _manager: Any, event: Event) -> None:
        if self._events.empty():
            # Nothing before it waits: handled now, in order, without a hop through the
            # queue (every call's events come this way).
            self._handle(event)
        else:
            self._events.put_nowait(event)

    async def _dispatch(self) -> None:
        while True:
            self._handle(await self._events.get())

    def _handle(self, event: Event) -> None:
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:
                logger.exception(
                    "AMI event handler failed on %s",
                    event.get("Event"),
                    extra={"action": "ami_event"},
                )


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _first_of(*events: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__
