"""Fixtures of the MQTT tests: a unique topic prefix (the shared ``broker`` fixture is in
tests/conftest.py). Helpers live in tests/helpers/mqtt.py.
"""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def prefix() -> str:
    return f"fe-test/{uuid.uuid4().hex[:10]}"
