from __future__ import annotations

import json
import logging

from dialer_server.observability.logs import JsonFormatter


def test_log_lines_are_json_with_the_extra_context() -> None:
    record = logging.LogRecord(
        "dialer_server.x", logging.WARNING, __file__, 1, "call %s", ("a",), None
    )
    record.attempt_id = "abc"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "call a"
    assert entry["level"] == "warning"
    assert entry["attempt_id"] == "abc"
    assert entry["logger"] == "dialer_server.x"
