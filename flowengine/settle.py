"""Knowing when a flow has done all it can: the event loop has nothing ready, no thread works.

:meth:`flowengine.runtime.Runtime.settled` builds on the two facts this module gives, without
sleeping on the wall clock (a timed wait is either too short on a loaded machine or too long):

* :func:`quiet` returns once the event loop has no callback ready: every task waits (on an
  inbox, a fake clock, a thread, a socket or a real timer). Concurrent callers share one
  poller, so several harnesses on one loop never keep each other busy.
* :func:`count_threads` makes the loop's default executor count the work it runs
  (``asyncio.to_thread``: model loads, checkpoint saves, smtplib), and :func:`threads_idle`
  waits until none runs. A thread's result reaches the loop before the count drops, so a
  caller that sees zero threads and a quiet loop sees the awaiting task's continuation too.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["CountingExecutor", "count_threads", "quiet", "threads_idle"]

T = TypeVar("T")

#: Turns of the loop :func:`quiet` gives a loop whose ready queue it cannot see (not CPython's).
FALLBACK_TURNS = 200

_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


async def quiet() -> None:
    """Return once the running loop has nothing ready but this caller (and other callers)."""
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)  # CPython's BaseEventLoop: the callbacks due now
    if ready is None:
        for _ in range(FALLBACK_TURNS):
            await asyncio.sleep(0)
        return
    poller = _pollers.get(loop)
    if poller is None or poller.done():
        poller = _pollers[loop] = loop.create_task(_poll(ready), name="flowengine-settle")
    await asyncio.shield(poller)


async def _poll(ready: Any) -> None:
    """Yield until this task is the only thing the loop had to run."""
    while True:
        await asyncio.sleep(0)
        if not ready:
            return


class CountingExecutor(ThreadPoolExecutor):
    """The default executor, counting the calls it runs (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="flowengine")
        self._lock = threading.Lock()
        self._busy = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def busy(self) -> int:
        """Calls submitted and not yet finished."""
        return self._busy

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn`` in a thread; the returned future completes before the count drops."""
        outer: Future[T] = Future()
        with self._lock:
            self._busy += 1
        try:
            inner = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done()
            raise
        outer.add_done_callback(lambda f: inner.cancel() if f.cancelled() else None)
        inner.add_done_callback(lambda f: self._finish(f, outer))
        return outer

    def _finish(self, inner: Future[T], outer: Future[T]) -> None:
        """Pass ``inner``'s outcome on (the loop hears of it first), then count it done."""
        try:
            if outer.cancelled():
                pass
            elif inner.cancelled():
                outer.cancel()
            elif (exc := inner.exception()) is not None:
                outer.set_exception(exc)
            else:
                outer.set_result(inner.result())
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._busy -= 1
            if self._busy:
                return
            waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            loop.call_soon_threadsafe(_resolve, waiter)

    async def idle(self) -> None:
        """Wait until no call runs."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._busy:
                return
            waiter = loop.create_future()
            self._waiters.append((loop, waiter))
        await waiter


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def count_threads(loop: asyncio.AbstractEventLoop | None = None) -> CountingExecutor:
    """Make ``loop``'s (default: the running loop's) default executor a counting one; the
    executor it had, if any, finishes what it runs and is let go. Idempotent."""
    loop = loop or asyncio.get_running_loop()
    current = getattr(loop, "_default_executor", None)
    if isinstance(current, CountingExecutor):
        return current
    executor = CountingExecutor()
    loop.set_default_executor(executor)
    if isinstance(current, ThreadPoolExecutor):
        current.shutdown(wait=False)
    return executor


async def threads_idle() -> bool:
    """Wait for the running loop's counted thread work to finish; True if there was any."""
    current = getattr(asyncio.get_running_loop(), "_default_executor", None)
    if not isinstance(current, CountingExecutor) or not current.busy:
        return False
    await current.idle()
    return True
