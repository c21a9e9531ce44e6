"""The seed's synchronous connector API over the async protocol clients the nodes use."""

from __future__ import annotations

import asyncio
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any, TypeVar

import pandas as pd

log = logging.getLogger("flowengine.connectors")
T = TypeVar("T")


class BaseDataConnector(ABC):
    """``connect() -> bool``, ``read_data() -> DataFrame | None``, ``disconnect() -> bool``,
    ``is_connection_active() -> bool``, as in the seed document.

    The async client runs on a private event loop in a background thread, so the blocking API
    works from plain scripts and notebooks. Failures are logged with the seed's messages and
    reported as ``False`` / ``None``, never raised.
    """

    #: How the seed's messages name the protocol ("OPC UA", "MQTT", ...).
    label = "data"

    def __init__(self, config: dict[str, Any], name: str | None = None) -> None:
        self.config = dict(config)
        self.name = name or type(self).__name__
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._active = False

    # ---- the seed's API ----------------------------------------------------------------------
    def connect(self) -> bool:
        """Connect; ``False`` (and a logged error) when the server cannot be reached."""
        try:
            self._run(self._connect())
        except Exception as exc:
            log.error("Failed to connect to %s: %s", self.target(), self.reason(exc))
            self._active = False
            return False
        self._active = True
        return True

    def target(self) -> str:
        """What the seed's messages name: "OPC UA server", "Modbus device 10.0.0.5:502"."""
        return f"{self.label} server"

    def reason(self, exc: BaseException) -> str:
        """Why a call failed, for the seed's messages ("timeout" for a timeout)."""
        return _reason(exc)

    def read_data(self) -> pd.DataFrame | None:
        """The readings since the last call (or the current values), ``None`` if there are none."""
        if not self._active:
            log.error("%s connector is not connected", self.label)
            return None
        try:
            frame = self._run(self._read())
        except Exception as exc:
            log.error("Failed to read from %s server: %s", self.label, _reason(exc))
            return None
        if frame is None or frame.empty:
            return None
        return frame.assign(source=self.name) if "source" not in frame else frame

    def disconnect(self) -> bool:
        """Close the connection and stop the background loop."""
        ok = True
        if self._loop is not None:
            try:
                self._run(self._disconnect())
            except Exception as exc:
                log.error("Error while disconnecting from %s server: %s", self.label, _reason(exc))
                ok = False
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(5)
            self._loop.close()
            self._loop = self._thread = None
        self._active = False
        return ok

    def is_connection_active(self) -> bool:
        return self._active

    def __enter__(self) -> BaseDataConnector:
        if not self.connect():
            raise ConnectionError(f"cannot connect to {self.label} server")
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # ---- what a protocol implements ------------------------------------------------------------
    @abstractmethod
    async def _connect(self) -> None: ...

    @abstractmethod
    async def _read(self) -> pd.DataFrame | None: ...

    @abstractmethod
    async def _disconnect(self) -> None: ...

    # ---- the background loop -------------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on this connector's own loop thread (started on first use); its result."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name=f"{self.name}-loop", daemon=True
            )
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, TimeoutError) or not text:
        return "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
    return text
