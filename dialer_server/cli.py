"""The ``dialer-server`` command."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config, load_config, parse_api_tokens
from .db.pool import create_pool, redact_url
from .errors import AmiAuthError, ConfigError, DialerError
from .observability.logs import setup_logging

logger = logging.getLogger(__name__)


_SECRET_KEYS = {"secret", "auth_header", "password", "hash_key"}

# Exit statuses: 2 for what only a person can fix (packaging/dialer-server.service does
# not restart it: RestartPreventExitStatus=2), 1 for the rest (restarted). A refused AMI
# login at start is wrong credentials: restarted every few seconds it would only fill
# the journal.
_EXIT_STATUS: tuple[tuple[type[DialerError], int], ...] = ((ConfigError, 2), (AmiAuthError, 2))


def exit_status(exc: DialerError) -> int:
    """The command's exit status for ``exc``."""
    return next((status for cls, status in _EXIT_STATUS if isinstance(exc, cls)), 1)


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
    sub.add_parser(
        "demo", help="run a demo campaign through the running daemon's API (see scripts/demo)"
    )
    sub.add_parser("check-config", help="validate the configuration and print it")
    _add_import_parser(sub)
    _add_campaign_parser(sub)
    _add_user_parser(sub)
    _add_dnc_parser(sub)
    _add_person_parser(sub)
    return parser


# The daemon's young generation is collected once this many more container objects
# were allocated than freed (Python's default: 700).
GC_YOUNG_THRESHOLD = 50_000


def _tune_gc() -> None:
    """The cyclic garbage collector, tuned for a long-running daemon.

    Every call allocates a few hundred objects (records, events, futures) that
    reference counting frees; with Python's thresholds the collector still ran about
    every 700 allocations and walked the young objects each time: about 0.1 ms per
    call in the engine benchmark, a tenth of the daemon's (docs/benchmarks.md). What
    is loaded at start (modules, configuration) is frozen out of every collection,
    and the young generation is collected after 50,000 net allocations: cycles
    (exceptions with their tracebacks, mostly) wait a little longer, never for ever.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(exc, exit_status(exc))
    setup_logging(config.log.level)
    try:
        if args.command == "run":
            import uvloop

            from .daemon import run_daemon

            _tune_gc()
            # The daemon runs on uvloop (pyproject.toml says why); the other commands,
            # short-lived, on asyncio's own loop.
            uvloop.run(run_daemon(config))
        elif args.command == "migrate":
            asyncio.run(_migrate(config))
        elif args.command == "demo":
            from .demo import run_demo

            return 0 if asyncio.run(run_demo(config, sys.stdout)) else 1
        elif args.command == "check-config":
            _print_config(config)
        elif args.command == "import":
            return asyncio.run(_import(config, args))
        elif args.command == "campaign":
            return asyncio.run(_campaign(config, args, sys.stdout))
        elif args.command == "user":
            return asyncio.run(_user(config, args, sys.stdout))
        elif args.command == "dnc":
            return asyncio.run(_dnc(config, args, sys.stdout, sys.stderr))
        elif args.command == "person":
            return asyncio.run(_person(config, args, sys.stdout))
    except DialerError as exc:
        return _fail(exc, exit_status(exc))
    except KeyboardInterrupt:
        return 130
    return 0


async def _migrate(config: Config) -> None:
    from .db.migrations import migrate

    pool = await create_pool(config.database)
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


def _add_import_parser(sub: Any) -> None:
    imp = sub.add_parser(
        "import",
        help="import contacts from a CSV or XLSX file into a campaign",
        description="Import contacts (columns phone1..phone5, param1..param12, external_id, "
        "timezone) from a CSV or XLSX file. Exit status: 0 every row stored, 3 rows "
        "rejected (listed), 1 the file or campaign cannot be used.",
    )
    imp.add_argument("file", type=Path, help="a .csv or .xlsx file")
    imp.add_argument("--campaign", type=int, required=True, metavar="ID", help="campaign id")
    imp.add_argument(
        "--all-or-nothing",
        action="store_true",
        help="store nothing if any row is bad (default: store the good rows)",
    )
    imp.add_argument(
        "--errors", type=int, default=20, metavar="N", help="row problems shown (default 20)"
    )
    imp.add_argument(
        "--dedup",
        choices=("off", "campaign", "running"),
        default="off",
        help="duplicates by phone number: none sought (off, the default), in the campaign, "
        "or in the campaign and every running campaign",
    )
    imp.add_argument(
        "--skip-duplicates",
        action="store_true",
        help="leave duplicates out (default: store them as failed/$duplicate, never dialled)",
    )
    imp.add_argument("--json", action="store_true", help="print the whole report as JSON")
    imp.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )


async def _import(config: Config, args: argparse.Namespace) -> int:
    from .contacts.importer import Dedup, run_import_command

    pool = await create_pool(config.database)
    try:
        return await run_import_command(
            pool,
            args.file,
            args.campaign,
            all_or_nothing=args.all_or_nothing,
            show_errors=args.errors,
            as_json=args.json,
            show_progress=args.progress,
            keep_report_days=config.import_.report_days,
            dedup=Dedup(args.dedup, "skip" if args.skip_duplicates else "keep"),
            hash_key=config.privacy.hash_key or None,
        )
    finally:
        await pool.close()


def _add_campaign_parser(sub: Any) -> None:
    campaign = sub.add_parser(
        "campaign",
        help="list, show, start, pause, resume or stop campaigns",
        description="Campaigns, straight from the database (the settings as for run). "
        "start/pause/resume/stop are idempotent and take effect at once for every daemon.",
    )
    actions = campaign.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every campaign, a line each")
    for action, text in (
        ("show", "one campaign with its contacts counted by state and status"),
        ("start", "start dialling (stopped, or completed with open contacts)"),
        ("pause", "no new call from now on; calls in progress end normally"),
        ("resume", "resume a paused campaign"),
        ("stop", "stop dialling (calls in progress end normally)"),
    ):
        one = actions.add_parser(action, help=text)
        one.add_argument("id", type=int, help="campaign id")


async def _campaign(config: Config, args: argparse.Namespace, out: Any) -> int:
    from .campaigns import operations as campaigns

    pool = await create_pool(config.database)
    try:
        async with pool.acquire() as conn, conn.transaction():
            if args.action == "list":
                rows = await campaigns.list_campaigns(conn, limit=10_000)
                totals = await campaigns.contact_totals(conn)
                _print_table(out, _campaign_lines(rows, totals))
            elif args.action == "show":
                campaign = await campaigns.get(conn, args.id)
                counts = await campaigns.counts(conn, args.id)
                _print_campaign(out, campaign, counts, config)
            else:
                campaign, before = await campaigns.transition(conn, args.id, args.action)
                name = f"campaign {campaign['id']} ({campaign['name']})"
                if campaign["state"] == before:
                    print(f"{name} is {before}: nothing to do", file=out)
                else:
                    print(f"{name}: {before} -> {campaign['state']}", file=out)
    finally:
        await pool.close()
    return 0


def _add_user_parser(sub: Any) -> None:
    from .accounts.roles import ROLES

    user = sub.add_parser(
        "user",
        help="create and list users (the first admin)",
        description="Users of the API, the agent desk and the supervisor view, straight "
        "from the database. The first admin is made here; after that, admins manage users "
        "over the API too.",
    )
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="create a user (asks for the password)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--agent", metavar="ENDPOINT", help="agent users: their PJSIP endpoint")
    add.add_argument("--display-name", metavar="TEXT")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (scripts) instead of a prompt",
    )
    actions.add_parser("list", help="every user, a line each")


def _read_password(from_stdin: bool) -> str:
    import getpass

    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise DialerError("the passwords differ")
    return first


async def _user(config: Config, args: argparse.Namespace, out: Any) -> int:
    from .accounts import users

    password = _read_password(args.password_stdin) if args.action == "add" else None
    pool = await create_pool(config.database)
    try:
        async with pool.acquire() as conn, conn.transaction():
            if args.action == "add":
                # A refusal (name taken, weak password) is a DialerError: one line, exit 1.
                row = await users.create_user(
                    conn,
                    {
                        "username": args.username,
                        "role": args.role,
                        "agent": args.agent,
                        "display_name": args.display_name,
                        "password": password,
                    },
                )
                print(f"user {row['id']} {row['username']} ({row['role']}) created", file=out)
            else:
                lines = [["id", "username", "role", "agent", "active"]]
                for row in await users.list_users(conn, limit=10_000):
                    lines.append(
                        [
                            str(row["id"]),
                            row["username"],
                            row["role"],
                            row["agent"] or "-",
                            "yes" if row["active"] else "no",
                        ]
                    )
                _print_table(out, lines)
    finally:
        await pool.close()
    return 0


def _add_dnc_parser(sub: Any) -> None:
    dnc = sub.add_parser(
        "dnc",
        help="national do-not-call registries: load (replace or merge), list, delete",
        description="National do-not-call registries, straight from the database (the "
        "settings as for run). A load reads a file of one number a line, or a CSV whose first "
        "column is the number (gzip too), and swaps it in for every daemon at once. Loads "
        "and deletions are recorded in the audit log (via cli).",
    )
    actions = dnc.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = actions.add_parser("load", help="load a registry's file")
    load.add_argument("name", help="the registry (a-z 0-9 _ -), e.g. us-national")
    load.add_argument("file", type=Path, help="one number a line, or CSV; .gz or not")
    load.add_argument("--region", help="how national numbers are read, e.g. US (new registry)")
    load.add_argument(
        "--mode",
        choices=("replace", "merge"),
        default="replace",
        help="replace (default): the file is the registry from now on; merge: added to it",
    )
    load.add_argument(
        "--expires-at",
        metavar="TIME",
        help="when the loaded entries stop counting, e.g. 2025-07-01T00:00:00Z (default never)",
    )
    load.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    actions.add_parser("list", help="every registry, a line each")
    delete = actions.add_parser("delete", help="delete a registry and its numbers")
    delete.add_argument("name")


async def _dnc(config: Config, args: argparse.Namespace, out: Any, err: Any) -> int:
    from datetime import datetime

    from .campaigns import dnc_registries

    expires_at = None
    if getattr(args, "expires_at", None):
        try:
            expires_at = datetime.fromisoformat(args.expires_at)
        except ValueError:
            expires_at = None
        if expires_at is None or expires_at.tzinfo is None:
            raise DialerError("--expires-at must be a date and time with a time zone")
    pool = await create_pool(config.database)
    try:
        if args.action == "load":
            result = await _dnc_load(pool, args, expires_at, err)
            registry = result.registry
            print(
                f"{args.file.name} -> registry {registry['name']} ({registry['region']}, "
                f"{result.mode}): {result.read} numbers read, {result.loaded} loaded, "
                f"{result.rejected} refused in {result.seconds:.1f} s "
                f"({result.rate:,.0f} numbers/s); {registry['entries']} entries",
                file=out,
            )
            for problem in result.problems:
                print(f"  line {problem.line}: {problem.reason}", file=out)
            return 3 if result.rejected else 0
        async with pool.acquire() as conn, conn.transaction():
            if args.action == "list":
                lines = [["name", "region", "entries", "loaded_at", "mode", "file"]]
                for row in await dnc_registries.list_registries(conn):
                    loaded = row["loaded_at"]
                    lines.append(
                        [
                            row["name"],
                            row["region"],
                            str(row["entries"]),
                            loaded.isoformat(timespec="seconds") if loaded else "-",
                            row["last_mode"] or "-",
                            row["last_file"] or "-",
                        ]
                    )
                _print_table(out, lines)
            else:
                before = await dnc_registries.delete(conn, args.name)
                await _cli_audit(
                    conn, "deleteDncRegistry", "dnc_registry", args.name, before=before
                )
                print(f"registry {args.name} deleted ({before['entries']} entries)", file=out)
    finally:
        await pool.close()
    return 0


async def _dnc_load(pool: Any, args: argparse.Namespace, expires_at: Any, err: Any) -> Any:
    from .campaigns import dnc_registries
    from .contacts.importer import ProgressBar

    try:
        stream = await asyncio.to_thread(args.file.open, "rb")
        size = (await asyncio.to_thread(args.file.stat)).st_size
    except OSError as exc:
        raise DialerError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    show = err.isatty() if args.progress is None else args.progress
    bar = ProgressBar(err) if show else None
    taken = 0

    async def chunks() -> Any:
        nonlocal taken
        while data := await asyncio.to_thread(stream.read, 1024 * 1024):
            taken += len(data)
            yield data

    def progress(numbers: int, _decoded: int) -> None:
        if bar is not None:
            bar(numbers, taken / size if size else None)

    try:
        async with pool.acquire() as conn, conn.transaction():
            result = await dnc_registries.load(
                conn,
                args.name,
                chunks(),
                region=args.region,
                mode=args.mode,
                expires_at=expires_at,
                file_name=args.file.name[:255],
                progress=progress,
            )
            await _cli_audit(
                conn,
                "loadDncRegistry",
                "dnc_registry",
                args.name,
                after={
                    "mode": args.mode,
                    "loaded": result.loaded,
                    "rejected": result.rejected,
                    "entries": result.registry["entries"],
                    "file": args.file.name,
                },
            )
    finally:
        await asyncio.to_thread(stream.close)
    if bar is not None:
        bar.end()
    return result


def _add_person_parser(sub: Any) -> None:
    person = sub.add_parser(
        "person",
        help="data rights (GDPR): find, export or erase a person across every campaign",
        description="A person is every contact with the number (any phone) or the CRM's "
        "external id, in every campaign. An erasure needs [privacy] hash_key and is recorded "
        "in the audit log (via cli), as is an export.",
    )
    actions = person.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("find", "their contacts, a line each"),
        ("export", "everything held about them, as JSON (stdout, or --out)"),
        ("erase", "erase them (asks first, unless --yes)"),
    ):
        one = actions.add_parser(action, help=text)
        one.add_argument("--phone", help="a number of theirs (E.164, or national with --region)")
        one.add_argument("--external-id", help="the CRM's id of them")
        one.add_argument("--region", default="US", help="how a national number is read")
        if action == "export":
            one.add_argument("--out", type=Path, help="write the JSON here")
        if action == "erase":
            one.add_argument("--yes", action="store_true", help="do not ask")


async def _person(config: Config, args: argparse.Namespace, out: Any) -> int:
    import json

    from .contacts import data_rights

    who = data_rights.who(args.phone, args.external_id, args.region)
    key = config.privacy.hash_key or None
    target = (
        data_rights.hash_prefix(key, who.numbers[0])
        if key and who.numbers
        else ("external_id" if who.external_id else "-")
    )
    pool = await create_pool(config.database)
    try:
        if args.action == "erase":
            async with pool.acquire() as conn:
                found = await data_rights.find(conn, who)
            if not found:
                print("no contact matches: nothing to erase", file=out)
                return 0
            if not args.yes:
                question = f"erase {len(found)} contacts in every campaign? [y/N] "
                answer = await asyncio.to_thread(input, question)
                if answer.strip().lower() not in ("y", "yes"):
                    print("nothing erased", file=out)
                    return 1
            async with pool.acquire() as conn, conn.transaction():
                done = await data_rights.erase(conn, who, key=key)
                await _cli_audit(
                    conn,
                    "erasePerson",
                    "person",
                    target,
                    after={"contacts": done.contacts, "attempts": done.attempts},
                )
            done = await data_rights.delete_recordings(done, config.recording.dir)
            print(
                f"erased: {done.contacts} contacts, {done.attempts} attempts, {done.numbers} "
                f"numbers kept as a keyed hash, {done.recordings_deleted} recordings deleted"
                + (f", {done.recordings_missing} not found" if done.recordings_missing else ""),
                file=out,
            )
            for failure in done.recordings_failed:
                print(f"  recording not deleted: {failure}", file=out)
            return 1 if done.recordings_failed else 0
        async with pool.acquire() as conn, conn.transaction():
            if args.action == "find":
                lines = [["contact", "campaign", "external_id", "phones", "state", "status"]]
                for c in await data_rights.find(conn, who):
                    phones = " ".join(c[f"phone{i}"] for i in range(1, 6) if c[f"phone{i}"])
                    lines.append(
                        [
                            str(c["id"]),
                            f"{c['campaign_id']} {c['campaign_name']}",
                            c["external_id"] or "-",
                            phones or "-",
                            c["state"],
                            f"{c['status']}/{c['status_detail']}",
                        ]
                    )
                _print_table(out, lines)
                return 0
            data = await data_rights.export(conn, who, key=key)
            await _cli_audit(
                conn, "exportPerson", "person", target, after={"contacts": len(data["contacts"])}
            )
        text = json.dumps(data, default=str, indent=1)
        if args.out is not None:
            await asyncio.to_thread(args.out.write_text, text + "\n")
            print(f"{len(data['contacts'])} contacts written to {args.out}", file=out)
        else:
            print(text, file=out)
    finally:
        await pool.close()
    return 0


async def _cli_audit(
    conn: Any,
    action: str,
    target_type: str,
    target_id: str,
    *,
    before: Any = None,
    after: Any = None,
) -> None:
    """An audit log row for a change made with the CLI: who is the machine's user."""
    import getpass

    from .accounts import audit
    from .accounts.roles import ADMIN, Principal

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    entry = audit.Entry(action, target_type, target_id, before, after)
    await audit.write(
        conn,
        Principal(username=f"cli:{who}"[:64], role=ADMIN),
        via="cli",
        method="CLI",
        path="dialer-server " + " ".join(sys.argv[1:3])[:200],
        entry=entry,
    )


def _strategy_text(campaign: Any) -> str:
    if campaign["strategy_id"] is None:
        return "-"
    return f"{campaign['strategy_name']} v{campaign['strategy_version']}"


def _campaign_lines(rows: Any, totals: dict[int, tuple[int, int]]) -> list[list[str]]:
    lines = [["id", "name", "state", "strategy", "lines", "calls/s", "contacts", "open"]]
    for c in rows:
        total, still_open = totals.get(c["id"], (0, 0))
        lines.append(
            [
                str(c["id"]),
                c["name"],
                c["state"],
                _strategy_text(c),
                str(c["max_concurrent_calls"]),
                f"{float(c['max_calls_per_second']):g}",
                str(total),
                str(still_open),
            ]
        )
    return lines


def _print_campaign(out: Any, c: Any, counts: dict[str, Any], config: Config) -> None:
    print(f"campaign {c['id']}: {c['name']}", file=out)
    _print_table(
        out,
        [
            ["state", c["state"]],
            ["strategy", _strategy_text(c)],
            ["trunk", c["trunk"] or f"{config.dialing.trunk} (daemon default)"],
            [
                "caller id",
                c["caller_id"]
                or (
                    f"{config.dialing.caller_id} (daemon default)"
                    if config.dialing.caller_id
                    else "-"
                ),
            ],
            ["lines", str(c["max_concurrent_calls"])],
            ["calls/s", f"{float(c['max_calls_per_second']):g}"],
            ["default region", c["default_region"]],
            ["time zone", c["timezone"]],
            ["mode", c["mode"]],
            ["amd", "on" if c["amd"] else "off"],
            ["ivr playback", c["ivr_playback"] or "-"],
            ["amd message", c["machine_message"] or "-"],
            ["attempt.result", "on" if c["webhook_attempts"] else "off"],
            ["created", c["created_at"].isoformat(timespec="seconds")],
            ["updated", c["updated_at"].isoformat(timespec="seconds")],
            ["attempts open", str(counts["open_attempts"])],
            ["contacts", str(counts["total"])],
        ],
        header=False,
    )
    if counts["by_state"]:
        print(file=out)
        _print_table(
            out, [["state", "contacts"], *([k, str(v)] for k, v in counts["by_state"].items())]
        )
        print(file=out)
        lines = [["status", "detail", "contacts"]]
        for status, details in counts["by_status"].items():
            lines += [[status, detail, str(n)] for detail, n in details.items()]
        _print_table(out, lines)


def _print_table(out: Any, lines: list[list[str]], header: bool = True) -> None:
    """Columns padded to their widest cell; numbers right-aligned; a rule under the header."""
    if not lines:
        return
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    numeric = [
        all(line[i].replace(".", "", 1).isdigit() for line in lines[1:]) and len(lines) > 1
        for i in range(len(widths))
    ]
    for index, line in enumerate(lines):
        cells = [
            cell.rjust(w) if numeric[i] and (index or not header) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=out)
        if header and index == 0:
            print("  ".join("-" * w for w in widths), file=out)


def _print_config(config: Config) -> None:
    import dataclasses

    sections = dataclasses.asdict(config)
    del sections["pbx"]
    for section, values in sections.items():
        _print_section(f"[{section.rstrip('_')}]", values)
    # The pool as the daemon uses it: inherited values filled in, and the one
    # PBX of [ami] when no [[pbx]] is given.
    for pbx in config.pool:
        _print_section("[[pbx]]", dataclasses.asdict(pbx))


def _print_section(header: str, values: dict[str, Any]) -> None:
    print(header)
    for key, value in values.items():
        # Secrets and credentials never reach a terminal or a log.
        shown = "***" if key in _SECRET_KEYS and value else value
        if key == "tokens" and value:
            # Names and scopes only: the tokens are secrets.
            shown = ", ".join(f"{t.name}:***:{t.scope}" for t in parse_api_tokens(value))
        if key == "url":
            shown = redact_url(str(value))
        print(f"{key} = {shown!r}")
    print()


def _fail(exc: Exception, code: int) -> int:
    # One line naming the problem: operators read this in journalctl.
    print(f"dialer-server: error: {exc}{_NOT_RESTARTED if code == 2 else ''}", file=sys.stderr)
    return code


_NOT_RESTARTED = " (exit status 2: not restarted by the systemd unit; fix it, then start again)"
