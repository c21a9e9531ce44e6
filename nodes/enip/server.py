"""``flowengine simulate --enip HOST:PORT``: the simulated line as Logix tags, served by cpppo.

Each sensor is a REAL tag named after it (``furnace_temp``), readable with ``enip_in`` (or any
Logix client that reads tags by name). cpppo is a simulator/test dependency, not part of the
``enip`` extra, so it is imported on use. Its server keeps its tags in module globals: one
``EnipPlant`` per process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Sequence
from typing import Any

from flowengine.extras import LibraryMissing

#: Seconds ``start`` waits for cpppo to bind its port.
BIND_TIMEOUT = 10.0


def _cpppo() -> tuple[Any, Any]:
    """cpppo's server ``main`` module and its ``dotdict``, or LibraryMissing saying what to do."""
    try:
        from cpppo.dotdict import dotdict
        from cpppo.server.enip import main as enip_main
    except ImportError:
        raise LibraryMissing(
            "EtherNet/IP simulator not available: install cpppo to serve EtherNet/IP "
            '(pip install "cpppo>=5.0"; it is in flowengine\'s test extra)'
        ) from None
    return enip_main, dotdict


class EnipPlant:
    """A cpppo EtherNet/IP server (Logix Read/Write Tag) with one REAL tag per sensor."""

    _started = False  # cpppo's tag table is per process

    def __init__(self) -> None:
        self._main, self._dotdict = _cpppo()
        self.control: Any = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.names: list[str] = []

    async def start(
        self, host: str, port: int, sensors: Sequence[str], units: Sequence[str]
    ) -> str:
        """Bind ``host:port`` (TCP), serve ``sensors`` as REAL tags; the line to print."""
        if EnipPlant._started:
            raise ValueError("cpppo serves one EtherNet/IP simulator per process")
        EnipPlant._started = True
        self.names = list(sensors)
        argv = ["--address", f"{host}:{port}", "--no-config", "--no-udp"]
        argv += [f"{name}=REAL" for name in self.names]
        self.control = self._dotdict()
        self.control["done"] = False
        self.thread = threading.Thread(
            target=self._serve, args=(argv,), name=f"enip-sim-{port}", daemon=True
        )
        self.thread.start()
        await asyncio.to_thread(self._wait_bound)
        listed = ", ".join(f"{n} ({u})" for n, u in zip(self.names[:3], units[:3], strict=False))
        more = ", ..." if len(self.names) > 3 else ""
        return (
            f"serving {len(self.names)} sensors as EtherNet/IP REAL tags at {host}:{port} "
            f"({listed}{more})"
        )

    def _serve(self, argv: list[str]) -> None:
        try:
            self._main.main(argv=argv, server=self._dotdict(control=self.control))
        except BaseException as exc:  # reported by start, or logged by stop
            self.error = exc

    def _wait_bound(self) -> None:
        deadline = time.monotonic() + BIND_TIMEOUT
        while "address" not in self.control:
            if self.thread is None or not self.thread.is_alive():
                raise OSError(f"cpppo did not start: {self.error or 'it ended'}")
            if time.monotonic() > deadline:
                raise OSError(f"cpppo did not bind within {BIND_TIMEOUT:.0f}s")
            time.sleep(0.01)

    async def update(self, stamp: dt.datetime, values: Sequence[float]) -> None:
        """Set every tag (cpppo serves the new values from its next reply on)."""
        tags = self._main.tags
        for name, value in zip(self.names, values, strict=True):
            dict.__getitem__(tags, name).attribute[0] = float(value)

    async def stop(self) -> None:
        """Ask cpppo's server loop to end and wait for it (bounded)."""
        if self.control is not None:
            self.control["done"] = True
        if self.thread is not None:
            await asyncio.to_thread(self.thread.join, 5.0)
            self.thread = None
