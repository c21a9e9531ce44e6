"""The shared device of the Modbus tests (one per test module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.peers import free_port


@pytest.fixture(scope="module")
def device() -> Iterator[object]:
    """Units 1 and 2 of :class:`tests.nodes.modbus.device.ModbusDevice` on a free port."""
    pytest.importorskip("pymodbus")
    from tests.nodes.modbus.device import ModbusDevice

    dev = ModbusDevice(free_port()).start()
    yield dev
    dev.close()
