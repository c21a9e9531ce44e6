"""The seed's connector API base: blocking calls over a private loop, seed error messages."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from flowengine.connectors import BaseDataConnector, LibraryMissing, require


class Fake(BaseDataConnector):
    label = "Fake"

    async def _connect(self) -> None:
        if self.config.get("fail"):
            raise TimeoutError()
        self.reads = 0

    async def _read(self) -> pd.DataFrame | None:
        self.reads += 1
        return pd.DataFrame({"sensor": ["a"], "value": [float(self.reads)]})

    async def _disconnect(self) -> None:
        pass


def test_connect_read_disconnect():
    conn = Fake({}, name="line3")
    assert not conn.is_connection_active()
    assert conn.connect() and conn.is_connection_active()
    frame = conn.read_data()
    assert frame is not None and frame["source"].tolist() == ["line3"]
    assert conn.read_data()["value"].tolist() == [2.0]
    assert conn.disconnect() and not conn.is_connection_active()


def test_failed_connect_is_false_with_the_seed_message(caplog):
    with caplog.at_level(logging.ERROR):
        assert Fake({"fail": True}).connect() is False
    assert "Failed to connect to Fake server: timeout" in caplog.text


def test_missing_library_names_the_extra():
    with pytest.raises(
        LibraryMissing, match=r"OPC UA library not available. Install 'flowengine\[opcua\]'"
    ):
        require("no_such_module_xyz", "opcua")
