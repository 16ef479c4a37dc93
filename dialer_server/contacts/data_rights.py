"""Data rights (GDPR): find a person across every campaign, export what is held about them,
erase them.

A person is found by a phone number (any phone of a contact, in E.164; the GIN index of
every contact's phones) or by the CRM's external id (in every campaign); their contacts
are every contact that has the number or the id. The export is every field of those
contacts, their attempts (with dispositions and recordings), their flow task log and
rows in export files, the SMS replies from their numbers, the do-not-call entries of
those numbers, and the audit log's rows about their contacts and calls.

An erasure, in the caller's transaction, of every contact found (never while one of them
is in a call: nothing is erased then):

- the contact keeps its row (its attempts' statistics hold on to it) but loses every
  personal field: its phones, params, external id and time zone; it is closed as
  ``cancelled``/``failed``/``$erased`` and never dialled again (``erased_at``), nor any
  flow task run for it;
- its attempts keep what statistics need (outcome, times, causes, agent, caller ID) and
  lose the number called, the provider's text, the keys pressed and the recording (its
  file is deleted once the transaction commits; ``recording_status`` ``deleted``);
- dispositions' notes, the SMS replies from its numbers, its pending and delivered
  webhook events and its events in the event log are deleted; the audit log's rows about
  its contact and its calls keep who did what when, not the before and after (the
  contact's data);
- its rows in the flows' export files are deleted and those files written again (the
  export sweep, flows/exports.py); its flow task log keeps each run but not its error
  text (a mail server's answer may quote the address);
- its numbers are kept only as a keyed hash (HMAC-SHA256 under ``[privacy] hash_key``) in
  ``erased_numbers``: an import (and a contact's change) with one of them is refused, so
  a later import does not bring the person back. The key's check value is stored the first
  time: a daemon with another key refuses imports rather than let erased numbers in.

Do-not-call entries of the numbers stay: they exist so that the number is not called,
an obligation of their own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from ..campaigns import do_not_call, recordings
from ..db.queries import queries_of
from ..errors import Conflict, InvalidInput

query = queries_of(__name__)

logger = logging.getLogger(__name__)

_KEY_CHECK_TEXT = b"dialer-server: the erasure hash key's check value"
DEFAULT_REGION = "US"
MAX_FOUND = 1000


class PrivacyKeyError(Conflict):
    """The erasure hash key is missing, or not the one erased numbers were hashed with."""

    code = "privacy_key"


def number_hash(key: str, number: str) -> bytes:
    """The keyed hash an erased number is kept as."""
    return hmac.new(key.encode(), number.encode(), hashlib.sha256).digest()


def key_check(key: str) -> bytes:
    return hmac.new(key.encode(), _KEY_CHECK_TEXT, hashlib.sha256).digest()


def hash_prefix(key: str, number: str) -> str:
    """What the audit log says of an erased number: never the number itself."""
    return "sha256:" + number_hash(key, number).hex()[:16]


@dataclasses.dataclass(frozen=True)
class Suppression:
    """The erased numbers' keyed hashes, for the checks of an import or a change."""

    key: str

    def hashes(self, numbers: Iterable[str]) -> list[bytes]:
        return [number_hash(self.key, n) for n in numbers]


async def suppression(conn: Any, key: str | None) -> Suppression | None:
    """What a write of phone numbers must check: None when nobody was ever erased.

    PrivacyKeyError when numbers were erased and ``key`` is missing or another key than
    theirs (it would let them in again)."""
    stored = await conn.fetchval(query("privacy_key_check"))
    if stored is None:
        return None
    if not key:
        raise PrivacyKeyError(
            "numbers were erased (GDPR) and [privacy] hash_key is not set: without it no "
            "import can tell them; set the key the erasures were made with"
        )
    if not hmac.compare_digest(bytes(stored), key_check(key)):
        raise PrivacyKeyError(
            "[privacy] hash_key is not the key the erased numbers were hashed with: set that "
            "key again (imports could bring erased people back otherwise)"
        )
    return Suppression(key)


async def erased(conn: Any, screen: Suppression, numbers: Sequence[str]) -> set[str]:
    """Which of ``numbers`` were erased."""
    if not numbers:
        return set()
    hashes = screen.hashes(numbers)
    found = {
        bytes(r["number_hash"]) for r in await conn.fetch(query("erased_number_hashes"), hashes)
    }
    return {n for n, h in zip(numbers, hashes, strict=True) if h in found}


@dataclasses.dataclass(frozen=True)
class Who:
    """How a person is sought: their numbers (E.164) and/or the CRM's id."""

    numbers: tuple[str, ...]
    external_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"numbers": list(self.numbers), "external_id": self.external_id}


def who(phone: str | None, external_id: str | None, region: str | None) -> Who:
    """InvalidInput unless at least one of them is given and the phone is a number."""
    if not phone and not external_id:
        raise InvalidInput(
            "give a phone number, an external id, or both",
            details=[{"field": "phone", "message": "required (or external_id)"}],
        )
    numbers: tuple[str, ...] = ()
    if phone:
        numbers = (do_not_call.normalize(phone, region or DEFAULT_REGION, "phone"),)
    if external_id is not None and not 1 <= len(external_id) <= 255:
        raise InvalidInput(
            "external_id must be 1-255 characters",
            details=[{"field": "external_id", "message": "length"}],
        )
    return Who(numbers, external_id or None)


async def find(conn: Any, person: Who, *, lock: bool = False) -> list[dict[str, Any]]:
    """Every contact of the person, in every campaign (with its campaign's name)."""
    args = (list(person.numbers), person.external_id, MAX_FOUND + 1)
    if lock:
        rows = await conn.fetch(query("lock_person_contacts"), *args)
    else:
        rows = await conn.fetch(query("person_contacts"), *args)
    if len(rows) > MAX_FOUND:
        raise Conflict(
            f"more than {MAX_FOUND} contacts match: narrow the search (the number and the "
            "external id together)",
            code="too_many_contacts",
        )
    return [dict(r) for r in rows]


def _numbers_of(person: Who, contacts: Sequence[dict[str, Any]]) -> list[str]:
    numbers = dict.fromkeys(person.numbers)
    for contact in contacts:
        for slot in range(1, 6):
            if contact[f"phone{slot}"]:
                numbers[contact[f"phone{slot}"]] = None
    return list(numbers)


async def export(conn: Any, person: Who, *, key: str | None) -> dict[str, Any]:
    """Everything held about the person, as JSON-ready data."""
    contacts = await find(conn, person)
    ids = [c["id"] for c in contacts]
    numbers = _numbers_of(person, contacts)
    attempts: dict[int, list[dict[str, Any]]] = {}
    for row in await conn.fetch(query("person_attempts"), ids):
        attempts.setdefault(row["contact_id"], []).append(dict(row))
    was_erased: list[str] = []
    if key:
        screen = Suppression(key)
        was_erased = sorted(await erased(conn, screen, numbers))
    return {
        "generated_at": datetime.now(UTC),
        "query": person.to_json(),
        "contacts": [
            {**contact, "attempts": attempts.get(contact["id"], [])} for contact in contacts
        ],
        "task_runs": [dict(r) for r in await conn.fetch(query("person_task_runs"), ids)],
        "export_rows": [
            {**dict(r), "row": json.loads(r["row"])}
            for r in await conn.fetch(query("person_export_rows"), ids)
        ],
        "sms_replies": [dict(r) for r in await conn.fetch(query("person_sms"), ids, numbers)],
        "do_not_call": [dict(r) for r in await conn.fetch(query("person_dnc"), numbers)],
        "audit_log": [dict(r) for r in await conn.fetch(query("person_audit"), ids)],
        "erased_numbers": was_erased,
    }


@dataclasses.dataclass
class Erasure:
    """What an erasure did (``recording_files``: to delete once it committed)."""

    contacts: int = 0
    attempts: int = 0
    numbers: int = 0
    sms_replies: int = 0
    webhook_events: int = 0
    recording_files: list[str] = dataclasses.field(default_factory=list)
    recordings_deleted: int = 0
    recordings_missing: int = 0
    recordings_failed: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        del out["recording_files"]
        return out


async def erase(conn: Any, person: Who, *, key: str | None) -> Erasure:
    """Erase the person in the caller's transaction; delete their recordings' files with
    :func:`delete_recordings` once it committed."""
    if not key:
        raise PrivacyKeyError(
            "erasing needs [privacy] hash_key (DIALER_PRIVACY_HASH_KEY): erased numbers are "
            "kept only as a keyed hash, so that no import brings them back"
        )
    stored = await conn.fetchval(query("privacy_key_check"))
    if stored is None:
        await conn.execute(query("set_privacy_key_check"), key_check(key))
    elif not hmac.compare_digest(bytes(stored), key_check(key)):
        raise PrivacyKeyError(
            "[privacy] hash_key is not the key earlier erasures were made with: set that key"
        )
    contacts = await find(conn, person, lock=True)
    ids = [c["id"] for c in contacts]
    if ids and await conn.fetchval(query("person_in_call"), ids):
        raise Conflict(
            "a call to this person is in progress: erase them once it has ended",
            code="call_in_progress",
        )
    numbers = _numbers_of(person, contacts)
    done = Erasure(contacts=len(ids), numbers=len(numbers))
    done.recording_files = [
        recordings.file_name(str(r["id"]))
        for r in await conn.fetch(query("person_recordings"), ids)
    ]
    done.webhook_events = _count(await conn.execute(query("erase_person_outbox"), ids))
    await conn.execute(query("erase_person_events"), [str(i) for i in ids])
    done.sms_replies = _count(await conn.execute(query("erase_person_sms"), ids, numbers))
    await conn.execute(query("erase_person_dispositions"), ids)
    await conn.execute(query("erase_person_audit"), ids)
    done.attempts = _count(await conn.execute(query("erase_person_attempts"), ids))
    await conn.execute(query("erase_person_export_rows"), ids)
    await conn.execute(query("erase_person_task_errors"), ids)
    await conn.execute(query("erase_person_contacts"), ids)
    await conn.execute(query("insert_erased_numbers"), Suppression(key).hashes(numbers))
    logger.info(
        "a person was erased: %d contacts, %d attempts",
        done.contacts,
        done.attempts,
        extra={"action": "erasure", "count": done.contacts},
    )
    return done


async def delete_recordings(done: Erasure, directory: str) -> Erasure:
    """Delete the erased attempts' recordings (after the erasure committed)."""
    for path in done.recording_files:
        outcome = await recordings.delete_file(directory, path)
        if outcome == "deleted":
            done.recordings_deleted += 1
        elif outcome == "missing":
            done.recordings_missing += 1
        else:
            done.recordings_failed.append(outcome)
    return done


def _count(status: str) -> int:
    return int(status.split()[-1])
