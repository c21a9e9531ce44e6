"""Which event loop a flow runs on: uvloop when it is installed (``flowengine[fast]``), else
asyncio's own; ``FLOWENGINE_LOOP=asyncio`` chooses asyncio's.

uvloop's loop (libuv, in C) costs a fraction of asyncio's per turn and per socket read or
write. At a few thousand small messages a second, where each message wakes the loop and
three node tasks, that is a third of the engine's CPU (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when installed and not turned off; None: asyncio's."""
    if os.environ.get("FLOWENGINE_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` chooses."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def name() -> str:
    """The running loop's kind: ``uvloop`` or ``asyncio`` (what a test checks it runs on)."""
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
