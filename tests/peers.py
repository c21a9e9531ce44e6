"""Helpers for tests against real protocol peers: free ports, open ports, waiting."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "it") -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


async def until(
    condition: Callable[[], bool],
    task: asyncio.Task[Any],
    timeout: float = 30.0,
    what: str = "condition",
) -> None:
    """Wait for ``condition`` while ``task`` (a running flow) runs; fail, never hang, if the
    task ends first or ``timeout`` passes."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                if task.done():
                    raise AssertionError(f"flow ended early waiting for {what}: {task.result()!r}")
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
