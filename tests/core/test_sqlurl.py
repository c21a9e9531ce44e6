"""Connection strings are checked at validation: the SDK a node config's validator calls."""

from __future__ import annotations

import pytest

from flowengine.sqlurl import DRIVERS, check_host_port, check_sql_url, driver_url, split_host_port


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///out/h.db",
        "sqlite:////abs/h.db",
        "postgresql://u:p@db:5432/plant",
        "postgresql:///plant",
        "mysql://u@db/plant",
        "mariadb+pymysql://u:p@db/plant",
    ],
)
def test_good_urls_pass(url):
    assert check_sql_url(url) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://b", "a SQLite URL names a file, not a host ('b')"),
        ("db.example:5432", "must look like 'dialect://user:pass@host/db'"),
        ("postgresql://u:p@db:abc/plant", "invalid port"),
        ("postgresql://u:p@db:99999/plant", "port 99999 out of range"),
        ("nosuchdb://u@h/x", "unknown database dialect 'nosuchdb'"),
    ],
)
def test_bad_urls_say_why(url, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_sql_url(url)


def test_host_port():
    assert check_host_port("broker:1883") == "broker:1883"
    assert check_host_port("[::1]:4840") == "[::1]:4840"
    assert check_host_port("plc", port_required=False) == "plc"
    assert split_host_port("10.0.0.5:502") == ("10.0.0.5", 502)
    for bad, why in [
        ("broker", "must be host:port"),
        ("broker:0", "port '0'"),
        ("broker:http", "port 'http'"),
        ("::1:4840", "brackets"),
        ("bad host:1", "not a host name"),
        ("", "empty host"),
    ]:
        with pytest.raises(ValueError, match=why):
            check_host_port(bad)


def test_driver_url_maps_plain_schemes():
    assert DRIVERS["postgres"][0] == "postgresql+psycopg"
    assert driver_url("sqlite:///x.db") == "sqlite:///x.db"
    assert driver_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert driver_url("mariadb://u@h/db") == "mysql+pymysql://u@h/db"
    with pytest.raises(ValueError, match="dialect://"):
        driver_url("no-scheme")
