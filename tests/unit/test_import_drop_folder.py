"""The drop folder against a real PostgreSQL: alone (with a hand-moved clock) and in the daemon."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dialer_server.config import ImportConfig
from dialer_server.contacts.drop_folder import DropFolder
from dialer_server.errors import DialerError


async def test_a_drop_folder_that_cannot_be_made_stops_with_a_clear_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("")
    drop = DropFolder(None, ImportConfig(drop_dir=str(tmp_path / "a-file" / "drop")))
    with pytest.raises(DialerError, match=r"cannot use the drop folder .* \(import.drop_dir\)"):
        await drop.run(asyncio.Event())
