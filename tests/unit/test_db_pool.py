from __future__ import annotations

import pytest

from dialer_server.db.pool import several_hosts


@pytest.mark.parametrize(
    ("url", "several"),
    [
        ("postgresql://dialer@db1:5432,db2:5432/dialer?target_session_attrs=read-write", True),
        ("postgresql://db1,db2/dialer", True),
        ("postgresql://dialer:pw@db1:5432/dialer", False),
        # A comma in the password is not a second host.
        ("postgresql://dialer:p,w@db1:5432/dialer", False),
        ("postgresql://dialer@db1/dialer?options=a,b", False),
    ],
)
def test_a_url_names_several_hosts_only_in_its_host_list(url: str, several: bool) -> None:
    assert several_hosts(url) is several
