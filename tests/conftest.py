"""Shared fixtures: a place for flow files, the flows shipped in flows/, and the MQTT broker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def broker() -> Iterator[Any]:
    """The machine's Mosquitto on 127.0.0.1:1883 when it listens (never stopped), else an
    embedded amqtt broker (MQTT 3.1.1 only); a ``tests.helpers.mqtt.Broker``."""
    from tests.helpers.mqtt import Broker, start_amqtt
    from tests.helpers.peers import port_open

    if port_open(1883) and not os.environ.get("FLOWENGINE_TEST_AMQTT"):
        yield Broker("127.0.0.1", 1883, "mosquitto")
        return
    port, loop = start_amqtt()
    yield Broker("127.0.0.1", port, "amqtt")
    loop.call_soon_threadsafe(loop.stop)


@pytest.fixture
def write_flow(tmp_path: Path):
    """Write flow text to a file in tmp_path and return its path."""

    def write(text: str, name: str = "flow.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


PLUGIN_CODE = '''
"""A third-party node pack, installed only for the tests."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd

from flowengine.node import Done, NodeConfig, Sink, Source, Transform, option
from flowengine.types import Batch


class TickConfig(NodeConfig):
    count: int = option(0, description="Batches to emit (0: endless).")
    rows: int = option(10, description="Rows per batch.")
    report: str = option("", description="File to write the number of rows read to, at close.")


class Tick(Source):
    """Numbered rows, as fast as downstream takes them; a restart goes on from its position."""

    Config = TickConfig
    category = "plugin"
    state_attrs = ("n",)

    async def start(self) -> None:
        self.n = 0

    async def read(self):
        if self.config.count and self.n >= self.config.count:
            raise Done
        await asyncio.sleep(0)
        rows = self.config.rows
        frame = pd.DataFrame({"seq": range(self.n * rows, (self.n + 1) * rows), "value": 1.5})
        self.n += 1
        return frame

    async def close(self) -> None:
        if self.config.report:
            Path(self.config.report).write_text(str(self.n * self.config.rows))


class Triple(Transform):
    """Multiplies `value` by three."""

    category = "plugin"

    def process(self, batch: Batch):
        return batch.frame.assign(value=batch.frame["value"] * 3)


class SlowFileConfig(NodeConfig):
    path: str = option(description="Where to append one line per row.")
    delay: float = option(0.01, description="Seconds per batch.")


class SlowFile(Sink):
    """Appends one line per row, slowly."""

    Config = SlowFileConfig
    category = "plugin"

    async def write(self, batch: Batch) -> None:
        await asyncio.sleep(self.config.delay)
        with Path(self.config.path).open("a") as out:
            out.writelines(f"{s}\\n" for s in batch.frame["seq"])


class LoginConfig(NodeConfig):
    user: str = option("operator", description="User name.")
    password: str = option(description="Password.", secret=True)


class Login(Sink):
    """Refuses every batch with an error that quotes the password (the runtime must mask it)."""

    Config = LoginConfig

    def write(self, batch: Batch) -> None:
        raise PermissionError(f"login {self.config.user}:{self.config.password} refused")


class ScaleConfig(NodeConfig):
    factor: float = option(2.0, description="Multiply `value` by this.")


class Scale(Transform[ScaleConfig]):
    """Names its config once, as the type argument."""

    def process(self, batch: Batch):
        return batch.frame.assign(value=batch.frame["value"] * self.config.factor)


import click  # noqa: E402


@click.command()
@click.argument("name")
def hello(name: str) -> None:
    """Say hello (a CLI command contributed by a node pack)."""
    click.echo(f"hello {name} from the test pack")
'''


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node-pack distribution on a path entry (package + dist-info with entry points)."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "fe_testpack").mkdir()
    (root / "fe_testpack" / "__init__.py").write_text(PLUGIN_CODE)
    info = root / "fe_testpack-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fe-testpack\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[flowengine.nodes]\n"
        "tick = fe_testpack:Tick\n"
        "triple = fe_testpack:Triple\n"
        "slowfile = fe_testpack:SlowFile\n"
        "login = fe_testpack:Login\n"
        "broken = fe_testpack:DoesNotExist\n"
        "scale = fe_testpack:Scale\n"
        "[flowengine.commands]\n"
        "hello = fe_testpack:hello\n"
        "brokencmd = fe_testpack:NoSuchCommand\n"
    )
    return root


@pytest.fixture
def cli_env(plugin_dir: Path) -> dict[str, str]:
    """Environment for running the `flowengine` command with the test plugin installed."""
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH")]))
    env.pop("FORCE_COLOR", None)
    return env
