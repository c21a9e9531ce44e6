"""Fixtures of the MQTT tests: the broker they share and a unique topic prefix.

The broker is the machine's Mosquitto on 127.0.0.1:1883 when it listens (never stopped),
otherwise an embedded amqtt broker (MQTT 3.1.1 only). Helpers live in tests/helpers/mqtt.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.helpers.mqtt import Broker, start_amqtt
from tests.helpers.peers import port_open


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """The machine's Mosquitto when it listens, else an embedded amqtt broker."""
    if port_open(1883) and not os.environ.get("FLOWENGINE_TEST_AMQTT"):
        yield Broker("127.0.0.1", 1883, "mosquitto")
        return
    port, loop = start_amqtt()
    yield Broker("127.0.0.1", port, "amqtt")
    loop.call_soon_threadsafe(loop.stop)


@pytest.fixture
def prefix() -> str:
    return f"fe-test/{uuid.uuid4().hex[:10]}"
