"""The daemon's life: start every part, supervise it, stop cleanly.

One stop event ends everything: SIGTERM/SIGINT set it, and so does the death of
any supervised task (a task that dies silently would leave a daemon that looks
up but does nothing). A second signal exits at once.

Stopping is graceful: the scheduler starts no new call and gives the calls in
flight up to ``dialing.drain_s`` to end and be recorded, and the task executor
lets the flow tasks it runs finish, while the parts they need (AMI, the instance
lock, the stats) keep running; those stop after them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .accounts.audit import AuditRetention
from .api.app import Services, create_app, server_options
from .campaigns import flows as flow_store
from .campaigns.recordings import RecordingKeeper
from .config import Config
from .contacts.drop_folder import DropFolder
from .db.migrations import migrate
from .db.outage import Outage
from .db.pool import create_pool, warn_if_failover_loses_commits
from .engine import store
from .engine.instance import Instance
from .engine.scheduler import Scheduler
from .engine.strategy import load_strategies_dir, strategy_to_dict
from .errors import DialerError
from .events import EventBroker
from .events import record_events as record_stream_events
from .flows.executor import TaskExecutor
from .observability.metrics import Metrics
from .observability.stats import StatsRefresher
from .telephony.ami import AmiState
from .telephony.originate import CallTracker
from .telephony.pbx_pool import Pbx, PbxPool
from .telephony.sms import build_provider
from .webhooks import WebhookSender, record_events

logger = logging.getLogger(__name__)

# How long each stage of shutdown (the scheduler's drain, beyond its
# dialing.drain_s; then everything else) may take before tasks are cancelled.
STOP_GRACE_S = 5.0


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop_event = asyncio.Event()
        # Set once the scheduler has drained: what calls need stops then.
        self.shutdown_event = asyncio.Event()
        self.metrics = Metrics()
        # PostgreSQL's availability as every part of the daemon sees it.
        self.outage = Outage(self.metrics.db_up)
        # The PBXs calls go to: an AMI connection and an agent roster each.
        self.pbxs = PbxPool(config)
        for pbx in self.pbxs:
            self.metrics.pbx_seen(pbx.name, pbx.config.limit)
        self.pbxs.on_state_change(self._pbx_state_changed)
        self.pbxs.observe_actions(self.metrics)
        self.tracker = CallTracker()
        self.pbxs.subscribe(self.tracker.handle_event)
        # Who of the queues' agents is free, each queue from its PBX's roster:
        # agent campaigns pace by it.
        self.roster: Any = self.pbxs.roster
        self.pool: Any = None
        self.http_port: int | None = None
        self.instance = Instance(config.database.url, config.database.connect_timeout_s)
        self.scheduler: Scheduler | None = None
        self.broker: EventBroker | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        """Run until stopped; raise DialerError when a part fails for good."""
        self.pool = await create_pool(self.config.database)
        try:
            async with self.pool.acquire() as conn:
                applied = await migrate(conn)
                await warn_if_failover_loses_commits(conn, self.config.database.url)
            if applied:
                logger.info(
                    "database schema updated",
                    extra={"action": "migrate", "versions": [m.version for m in applied]},
                )
            await load_strategy_files(self.pool, Path(self.config.dialing.strategies_dir))
            await flow_store.load_flow_files(self.pool, Path(self.config.flows.dir))
            await self.instance.register(self.pool, self.pbxs.names)
            await record_events(self.pool, self.config.webhooks)
            await record_stream_events(self.pool, self.config.events)
            self.broker = EventBroker(
                self.pool,
                self.config.events,
                self.config.database,
                outage=self.outage,
                on_clients=self.metrics.sse_clients.set,
            )
            await self._start_http()
            self._session = aiohttp.ClientSession()
            # AMI SMS leave through the first PBX that is up.
            sms = build_provider(self.config.sms, self.pbxs, self._session)
            self.scheduler = Scheduler(
                pool=self.pool,
                pbxs=self.pbxs,
                tracker=self.tracker,
                sms=sms,
                config=self.config,
                instance=self.instance,
                metrics=self.metrics,
                roster=self.roster,
                outage=self.outage,
            )
            tasks = [
                asyncio.create_task(self.instance.hold(self.shutdown_event), name="instance"),
                asyncio.create_task(self.scheduler.run(self.stop_event), name="scheduler"),
                asyncio.create_task(
                    StatsRefresher(
                        self.pool,
                        self.metrics,
                        self.config.dialing.trunk,
                        outage=self.outage,
                        pbxs=self.pbxs.names,
                    ).run(self.shutdown_event),
                    name="stats",
                ),
                asyncio.create_task(
                    # Sends on while the scheduler drains: its last results are events too.
                    WebhookSender(
                        self.pool,
                        self.config.webhooks,
                        self.config.database,
                        self.metrics,
                        outage=self.outage,
                    ).run(self.shutdown_event),
                    name="webhooks",
                ),
            ]
            tasks.append(asyncio.create_task(self.broker.run(self.shutdown_event), name="events"))
            # The tasks of flows that are not calls (email, webhook, export...): they
            # stop with the calls (stop_event) and finish what they started.
            executor = TaskExecutor(
                pool=self.pool,
                config=self.config,
                instance=self.instance,
                metrics=self.metrics,
                sms=sms,
                session=self._session,
                outage=self.outage,
            )
            tasks.append(asyncio.create_task(executor.run(self.stop_event), name="tasks"))
            tasks.append(
                asyncio.create_task(
                    AuditRetention(
                        self.pool, self.config.audit.retention_days, outage=self.outage
                    ).run(self.shutdown_event),
                    name="audit-retention",
                )
            )
            for pbx in self.pbxs:
                tasks += [
                    asyncio.create_task(pbx.ami.run(self.shutdown_event), name=f"ami-{pbx.name}"),
                    # Follows the queues while calls drain: their agents' calls end then too.
                    asyncio.create_task(
                        pbx.roster.run(self.shutdown_event), name=f"agents-{pbx.name}"
                    ),
                ]
            tasks.append(
                asyncio.create_task(
                    # Notes each call's recording as it is written, deletes old ones.
                    RecordingKeeper(
                        self.pool, self.config.recording, outage=self.outage, metrics=self.metrics
                    ).run(self.shutdown_event),
                    name="recordings",
                )
            )
            if self.config.import_.drop_dir:
                # The drop folder is optional: off unless [import] drop_dir is set.
                drop_folder = DropFolder(
                    self.pool,
                    self.config.import_,
                    outage=self.outage,
                    hash_key=self.config.privacy.hash_key or None,
                )
                tasks.append(
                    asyncio.create_task(drop_folder.run(self.stop_event), name="drop-folder")
                )
            logger.info(
                "dialer started",
                extra={
                    "action": "start",
                    "http_port": self.http_port,
                    "pid": os.getpid(),
                    "instance_id": self.instance.id,
                },
            )
            await self._supervise(tasks)
        finally:
            await self._cleanup()

    def stop(self) -> None:
        self.stop_event.set()

    def _pbx_state_changed(self, pbx: Pbx, state: AmiState) -> None:
        self.metrics.pbx_state_changed(pbx.name, state, all_up=self.pbxs.all_up)

    async def _start_http(self) -> None:
        app = create_app(
            Services(
                pool=self.pool,
                pbxs=self.pbxs,
                metrics=self.metrics,
                config=self.config,
                outage=self.outage,
                roster=self.roster,
                broker=self.broker,
            )
        )
        # Event streams end when the broker stops; the rest get a few seconds.
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=STOP_GRACE_S,
            **server_options(),
        )
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
        # First the scheduler drains its calls in flight, with AMI still up (and the
        # task executor its tasks: an SMS task needs AMI too).
        draining = [t for t in tasks if t.get_name() in ("scheduler", "tasks") and not t.done()]
        if draining:
            await asyncio.wait(draining, timeout=self.config.dialing.drain_s + STOP_GRACE_S)
        self.shutdown_event.set()
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
        if self._session is not None:
            await self._session.close()
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pool.close(), STOP_GRACE_S)
        logger.info("dialer stopped", extra={"action": "stop"})


async def load_strategy_files(pool: Any, directory: Path) -> None:
    """Store the strategy files' versions; a changed file must bump its version."""
    if not await asyncio.to_thread(directory.is_dir):
        logger.warning(
            "no strategy directory %s: only strategies in the database are available",
            directory,
            extra={"action": "strategies"},
        )
        return
    async with pool.acquire() as conn:
        for strategy in await asyncio.to_thread(load_strategies_dir, directory):
            definition = strategy_to_dict(strategy)
            _, stored = await store.save_strategy_version(
                conn, strategy.name, strategy.version, definition
            )
            if stored != definition:
                raise DialerError(
                    f"strategy {strategy.name} version {strategy.version} in {directory} "
                    "differs from the stored one: give the changed strategy a new version"
                )


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
