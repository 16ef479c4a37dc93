"""The ``dialer-server`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from . import __version__, db
from .config import Config, load_config
from .errors import ConfigError, DialerError
from .logs import setup_logging

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialer-server", description="Outbound campaign dialer for Asterisk."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="TOML config file (default: $DIALER_CONFIG); DIALER_* variables override it",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="run the daemon")
    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser("demo", help="place one demo call per outcome through Asterisk")
    sub.add_parser("check-config", help="validate the configuration and print it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(exc, 2)
    setup_logging(config.log.level)
    try:
        if args.command == "run":
            from .daemon import run_daemon

            asyncio.run(run_daemon(config))
        elif args.command == "migrate":
            asyncio.run(_migrate(config))
        elif args.command == "demo":
            from .demo import run_demo

            return 0 if asyncio.run(run_demo(config, sys.stdout)) else 1
        elif args.command == "check-config":
            _print_config(config)
    except DialerError as exc:
        return _fail(exc, 1)
    except KeyboardInterrupt:
        return 130
    return 0


async def _migrate(config: Config) -> None:
    from .migrations import migrate

    pool = await db.connect(config.database)
    try:
        async with pool.acquire() as conn:
            applied = await migrate(conn)
    finally:
        await pool.close()
    if applied:
        for m in applied:
            print(f"applied {m.version:04d}_{m.name}")
    else:
        print("database schema is up to date")


def _print_config(config: Config) -> None:
    import dataclasses

    for section, values in dataclasses.asdict(config).items():
        print(f"[{section}]")
        for key, value in values.items():
            shown = "***" if key == "secret" and value else value
            if key == "url":
                shown = db._redact(str(value))
            print(f"{key} = {shown!r}")
        print()


def _fail(exc: Exception, code: int) -> int:
    # One line naming the problem: operators read this in journalctl.
    print(f"dialer-server: error: {exc}", file=sys.stderr)
    return code
