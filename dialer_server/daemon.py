"""The daemon's life: start every part, supervise it, stop cleanly.

One stop event ends everything: SIGTERM/SIGINT set it, and so does the death of
any supervised task (a task that dies silently would leave a daemon that looks
up but does nothing). A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from aiohttp import web

from . import db
from .ami import AmiClient
from .config import Config
from .errors import DialerError
from .metrics import Metrics
from .migrations import migrate
from .originate import CallTracker
from .web import Services, create_app

logger = logging.getLogger(__name__)

# How long shutdown may take before the remaining tasks are cancelled.
STOP_GRACE_S = 5.0


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop_event = asyncio.Event()
        self.metrics = Metrics()
        self.ami = AmiClient(config.ami)
        self.ami.on_state_change(self.metrics.ami_state_changed)
        self.tracker = CallTracker()
        self.ami.subscribe(self.tracker.handle_event)
        self.pool: Any = None
        self.http_port: int | None = None
        self._runner: web.AppRunner | None = None

    async def run(self) -> None:
        """Run until stopped; raise DialerError when a part fails for good."""
        self.pool = await db.connect(self.config.database)
        try:
            async with self.pool.acquire() as conn:
                applied = await migrate(conn)
            if applied:
                logger.info(
                    "database schema updated",
                    extra={"action": "migrate", "versions": [m.version for m in applied]},
                )
            await self._start_http()
            tasks = [asyncio.create_task(self.ami.run(self.stop_event), name="ami")]
            logger.info(
                "dialer started",
                extra={"action": "start", "http_port": self.http_port, "pid": os.getpid()},
            )
            await self._supervise(tasks)
        finally:
            await self._cleanup()

    def stop(self) -> None:
        self.stop_event.set()

    async def _start_http(self) -> None:
        app = create_app(Services(pool=self.pool, ami=self.ami, metrics=self.metrics))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http.host, self.config.http.port)
        try:
            await site.start()
        except OSError as exc:
            raise DialerError(
                f"cannot listen on {self.config.http.host}:{self.config.http.port}: "
                f"{exc.strerror or exc}"
            ) from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else self.config.http.port

    async def _supervise(self, tasks: list[asyncio.Task[None]]) -> None:
        stopper = asyncio.create_task(self.stop_event.wait(), name="stop")
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        failure: BaseException | None = None
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                failure = task.exception()
                # A DialerError is reported once, by the caller, as one line.
                if not isinstance(failure, DialerError):
                    logger.error(
                        "task %s failed: %r",
                        task.get_name(),
                        failure,
                        extra={"action": "supervise"},
                    )
        self.stop_event.set()
        stopper.cancel()
        _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if isinstance(failure, DialerError):
            raise failure
        if failure is not None:
            raise DialerError(f"internal error: {failure!r}") from failure

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pool.close(), STOP_GRACE_S)
        logger.info("dialer stopped", extra={"action": "stop"})


async def run_daemon(config: Config) -> None:
    daemon = Daemon(config)
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            logger.warning("second signal: exiting now", extra={"action": "stop"})
            os._exit(1)
        logger.info("received %s, stopping", signal.Signals(signum).name, extra={"action": "stop"})
        daemon.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await daemon.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
