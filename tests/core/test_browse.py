"""`flowengine browse URL` picks the family by URL scheme and fails with a clear message
(never a traceback) for an unknown scheme or a server that does not answer."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowengine.browse import schemes
from tests.helpers.peers import free_port

CLI = [sys.executable, "-m", "flowengine.cli"]


def _browse(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "browse", url, "--timeout", "2"], capture_output=True, text=True, timeout=60
    )


def test_every_shipped_scheme_is_registered() -> None:
    assert {"opc.tcp", "modbus", "s7", "enip"} <= set(schemes())


def test_an_unknown_scheme_lists_the_known_ones() -> None:
    done = _browse("ftp://127.0.0.1:21")
    assert done.returncode == 1
    assert "cannot browse 'ftp://127.0.0.1:21'" in done.stderr
    assert "opc.tcp://" in done.stderr and "modbus://" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_silent_opcua_server_is_a_connect_error() -> None:
    pytest.importorskip("asyncua")
    done = _browse(f"opc.tcp://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert "Failed to connect to OPC UA server" in done.stderr
    assert "Traceback" not in done.stderr
