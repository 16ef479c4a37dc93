"""Recording through real Asterisk: an answered call of a campaign that records becomes a WAV
file of the call's length, which the API serves (range requests too), and which retention
and an erasure delete; a recording the dialer cannot reach is said so."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import wave
from pathlib import Path
from typing import Any

import pytest

from dialer_server.config import Config, PrivacyConfig, RecordingConfig
from dialer_server.engine import store

from ..support.api_client import api_config, api_server, user_token
from ..support.campaign_setup import (
    add_campaign,
    engine_config,
    running_daemon,
    wait_campaign_state,
)

pytestmark = pytest.mark.stack

ONE_CALL = {
    "name": "recorded-one-call",
    "version": 1,
    "caps": {"per_contact": 1},
    "attempts": [{"phone": 1, "ring_timeout_s": 15}],
}
KEY = "erasure-hash-key-0123456789abcdef"


def recording_config(config: Config, directory: str, **extra: Any) -> Config:
    values = {"dir": directory, "scan_interval_s": 0.5, "missing_after_s": 30.0, **extra}
    return dataclasses.replace(
        api_config(engine_config(config)),
        recording=RecordingConfig(**values),
        privacy=PrivacyConfig(hash_key=KEY),
    )


def wav_seconds(path: str) -> float:
    with wave.open(path, "rb") as audio:
        return audio.getnframes() / audio.getframerate()


def exists(path: str) -> bool:
    return Path(path).exists()


async def wait_status(pool: Any, campaign_id: int, status: str, count: int) -> list[Any]:
    async with asyncio.timeout(60):
        while True:
            async with pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT id, answered_at, ended_at, recording_status, recording_path, "
                    "recording_duration_s, recording_bytes FROM attempts WHERE campaign_id = $1 "
                    "AND recording_status = $2 ORDER BY created_at",
                    campaign_id,
                    status,
                )
            if len(rows) >= count:
                return rows
            await asyncio.sleep(0.2)


async def recorded_campaign(pool: Any, phones: list[str]) -> int:
    async with pool.acquire() as conn:
        # The far end answers ...230 and holds 30 s: our dialplan ends the call after the
        # announcement (2.3 s) and the campaign's message (3 s), both recorded.
        campaign_id, _ = await add_campaign(
            conn,
            "recorded",
            ONE_CALL,
            [[p] for p in phones],
            start=False,
            ivr_playback="tt-weasels",
        )
    return int(campaign_id)


async def test_a_recorded_call_is_a_wav_of_its_length_served_and_deleted(
    stack: Any, config: Config, pool: Any
) -> None:
    directory = stack.env["DIALER_RECORDING_DIR"]
    resolved = await asyncio.to_thread(os.path.realpath, directory)
    cfg = recording_config(config, directory)
    campaign_id = await recorded_campaign(pool, ["+12025551230", "+12025552230"])
    admin = await user_token(config.database.url, "ada", "admin")
    async with api_server(cfg) as crm:
        api = crm.with_token(admin)
        settings = await api.ok(
            "PUT",
            f"/api/v1/campaigns/{campaign_id}/recording",
            {"enabled": True, "announcement": "conf-now-recording", "retention_days": 1},
        )
        assert settings == {
            "enabled": True,
            "announcement": "conf-now-recording",
            "retention_days": 1,
        }
        bad = await api.put(
            f"/api/v1/campaigns/{campaign_id}/recording", {"announcement": "../../etc/passwd"}
        )
        assert bad.status == 422
        async with pool.acquire() as conn:
            await store.set_campaign_state(conn, campaign_id, "running")
        async with running_daemon(cfg):
            await wait_campaign_state(config.database.url, campaign_id, "completed", timeout=60)
            rows = await wait_status(pool, campaign_id, "stored", 2)

            for row in rows:
                path = row["recording_path"]
                assert path == os.path.join(resolved, f"{row['id']}.wav")
                seconds = await asyncio.to_thread(wav_seconds, path)
                call = (row["ended_at"] - row["answered_at"]).total_seconds()
                # The announcement and the message: some 5.3 s, all of it recorded.
                assert call > 4.5
                assert abs(seconds - call) <= 1.0, (seconds, call)
                assert float(row["recording_duration_s"]) == pytest.approx(seconds, abs=0.01)
                assert row["recording_bytes"] == await asyncio.to_thread(os.path.getsize, path)

            first, second = rows
            data = await asyncio.to_thread(Path(first["recording_path"]).read_bytes)
            url = f"/api/v1/attempts/{first['id']}/recording"
            whole = await api.get(url)
            assert whole.status == 200 and whole.raw == data
            assert whole.headers["Content-Type"] == "audio/wav"
            part = await api.get(url, headers={"Range": "bytes=44-1043"})
            assert part.status == 206 and part.raw == data[44:1044]
            assert part.headers["Content-Range"] == f"bytes 44-1043/{len(data)}"
            tail = await api.get(url, headers={"Range": "bytes=-100"})
            assert tail.status == 206 and tail.raw == data[-100:]
            # The CRM may fetch it; a read-only token may not.
            assert (await crm.get(url)).status == 200
            reader = await user_token(config.database.url, "rita", "read_only")
            assert (await crm.with_token(reader).get(url)).status == 403
            attempts = await api.ok("GET", f"/api/v1/campaigns/{campaign_id}/attempts")
            assert {a["recording_status"] for a in attempts["items"]} == {"stored"}

            # Retention: the first call is now three days old.
            async with pool.acquire() as conn:
                await conn.execute(
                    "UPDATE attempts SET ended_at = ended_at - interval '3 days' WHERE id = $1",
                    first["id"],
                )
            await wait_status(pool, campaign_id, "deleted", 1)
            assert not await asyncio.to_thread(exists, first["recording_path"])
            gone = await api.get(url)
            assert gone.status == 404 and gone.body["error"]["code"] == "recording_deleted"

            # An erasure deletes the other one.
            erased = await api.ok("POST", "/api/v1/persons/erase", {"phone": "+12025552230"})
            assert erased["recordings_deleted"] == 1
            assert not await asyncio.to_thread(exists, second["recording_path"])
            after = await api.get(f"/api/v1/attempts/{second['id']}/recording")
            assert after.body["error"]["code"] == "recording_deleted"


async def test_a_recording_this_dialer_cannot_reach_is_said_so(
    stack: Any, config: Config, pool: Any, tmp_path: Path
) -> None:
    """The PBX records on its own disk, and this dialer's [recording] dir is not that
    folder (no shared storage): the attempt's recording is missing, and the API says why."""
    elsewhere = tmp_path / "not-the-pbx-folder"
    await asyncio.to_thread(elsewhere.mkdir)
    cfg = recording_config(config, str(elsewhere), missing_after_s=2.0)
    campaign_id = await recorded_campaign(pool, ["+12025553230"])
    async with api_server(cfg) as api:
        await api.ok("PUT", f"/api/v1/campaigns/{campaign_id}/recording", {"enabled": True})
        async with pool.acquire() as conn:
            await store.set_campaign_state(conn, campaign_id, "running")
        async with running_daemon(cfg):
            await wait_campaign_state(config.database.url, campaign_id, "completed", timeout=60)
            (row,) = await wait_status(pool, campaign_id, "missing", 1)
        reply = await api.get(f"/api/v1/attempts/{row['id']}/recording")
        assert reply.status == 404
        assert reply.body["error"]["code"] == "recording_not_reachable"
        assert str(elsewhere) in reply.body["error"]["message"]
        assert "shared storage" in reply.body["error"]["message"]
        none = await api.get("/api/v1/attempts/00000000-0000-0000-0000-000000000000/recording")
        assert none.status == 404
    # The file is where the PBX wrote it: on its own disk.
    written = Path(stack.env["DIALER_RECORDING_DIR"]) / f"{row['id']}.wav"
    assert await asyncio.to_thread(written.exists)
    await asyncio.to_thread(written.unlink)
