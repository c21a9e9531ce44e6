"""Fixtures of the MQTT tests: a unique topic prefix and Mosquittos of a test's own (the
shared ``broker`` fixture is in tests/conftest.py). Helpers live in tests/helpers/mqtt.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.nodes.mqtt.test_mqtt import HAVE_MOSQUITTO, PrivateMosquitto


@pytest.fixture
def prefix() -> str:
    return f"fe-test/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[Any]:
    """Start Mosquittos of the test's own (``make(extra_config)``); stopped afterwards."""
    if not HAVE_MOSQUITTO:
        pytest.skip("the mosquitto binary is not installed")
    started: list[PrivateMosquitto] = []

    def make(extra: str = "", anonymous: bool = True) -> PrivateMosquitto:
        started.append(PrivateMosquitto(tmp_path, extra, anonymous))
        return started[-1]

    yield make
    for broker in started:
        if broker.proc and broker.proc.poll() is None:
            broker.proc.terminate()
            broker.proc.wait(10)
