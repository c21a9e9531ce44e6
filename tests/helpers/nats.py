"""NATS servers for the tests: the machine's (127.0.0.1:4222, never stopped) and private ones
(``nats-server -js`` on a free port with its own store), which fault tests stop and restart.

Also small synchronous JetStream calls (look at a stream, delete it) for test code that runs
outside an event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from tests.helpers.peers import free_port, port_open

SHARED = "nats://127.0.0.1:4222"


def binary() -> str | None:
    """The nats-server executable, if installed."""
    return shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )


class PrivateServer:
    """``nats-server -js -p PORT -sd DIR [-c CONF]``: started, killed and restarted by a test
    on the same port and store, so JetStream streams and consumers survive a restart."""

    def __init__(self, folder: Path, config: str = "") -> None:
        exe = binary()
        assert exe is not None, "nats-server missing (the fixture skips first)"
        self.exe = exe
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store = folder / "js"
        self.config = folder / "server.conf"
        self.config.write_text(config)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateServer:
        where = ["-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)]
        self.proc = subprocess.Popen(
            [self.exe, "-js", *where, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not port_open(self.port):
            assert self.proc.poll() is None, "nats-server ended at start (bad config?)"
            assert time.monotonic() < deadline, "nats-server did not listen within 20s"
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """Stop it hard (SIGKILL), as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()


def sync(call: Callable[[Any], Coroutine[Any, Any, Any]], url: str = SHARED, **auth: Any) -> Any:
    """Run ``call(js)`` on a fresh connection to ``url`` and return its result."""
    import nats

    async def main() -> Any:
        nc = await nats.connect(url, allow_reconnect=False, **auth)
        try:
            return await call(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(main())


def stored(stream: str, url: str = SHARED) -> list[Any]:
    """Every message a stream holds (an ephemeral ordered read, consumers left alone)."""

    async def read(js: Any) -> list[Any]:
        info = await js.stream_info(stream)
        msgs = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msgs.append(await js.get_msg(stream, seq))
        return msgs

    return list(sync(read, url))


def drop_stream(stream: str, url: str = SHARED) -> None:
    """Delete a stream if it exists (test clean-up)."""

    async def drop(js: Any) -> None:
        with contextlib.suppress(Exception):  # never created, or already gone
            await js.delete_stream(stream)

    sync(drop, url)
