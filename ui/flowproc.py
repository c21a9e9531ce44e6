"""The editor's end of one flow's process (:mod:`flowengine.ui.hostproc`): spawning it,
requests and their replies, its pushes, its logs, and how it ended.

Everything here runs on the editor's event loop and only awaits I/O (a process's exit is
waited for in a thread). A process is started one ahead (:func:`prewarm`, and after each
start), so a flow starts without waiting for Python's imports. The process's log records come
in its pushes and are logged here under their own logger names and levels; what it writes to
stdout/stderr itself (a crash's traceback, a ``print``) goes to the editor's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from flowengine.deploy import NotRunning
from flowengine.ui.channel import open_stream, pack, read_frame
from flowengine.ui.hostproc import Failure, LogLine, Push

log = logging.getLogger("flowengine.flowproc")
#: Seconds a stop waits for the process beyond the flow's drain timeout, then kills it.
STOP_GRACE = 10.0


class ProcessGone(NotRunning):
    """The flow's process has ended (killed, crashed or stopped): nothing answers."""


def why_ended(code: int | None) -> str:
    """A process's exit code, said plainly."""
    if code is None:
        return "the flow's process stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the flow's process was killed by {name}"
    return f"the flow's process exited with code {code}"


class FlowProcess:
    """One flow's process, from the editor's side."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_push: Callable[[Push], None],
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self._writer = writer
        self._on_push = on_push
        self._ids = itertools.count()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        #: Set once the channel closed: ``result`` says how the run ended.
        self.closed = asyncio.Event()
        #: The ``ended`` frame's value: a RunReport or a Failure; None when none came.
        self.result: Any = None
        #: Why the process ended without reporting an end (killed, crashed), else None.
        self.lost: str | None = None
        self._reading = asyncio.create_task(self._read(reader), name=f"flowproc:{proc.pid}")

    @classmethod
    async def spawn(cls, on_push: Callable[[Push], None]) -> FlowProcess:
        """A flow process (it runs nothing until ``start``): the one started ahead, whose
        imports are done, and another is started ahead for the next time."""
        proc, ours = _take_spare()
        reader, writer = await open_stream(ours)
        level = logging.getLogger().getEffectiveLevel()
        writer.write(pack((list(sys.path), dict(os.environ), os.getcwd(), level)))
        return cls(proc, reader, writer, on_push)

    @property
    def alive(self) -> bool:
        """True until the channel closed (the process ended or is about to)."""
        return not self.closed.is_set()

    async def request(self, op: str, *args: Any) -> Any:
        """Ask the process for ``op``; its answer, or the exception it raised."""
        if not self.alive:
            raise ProcessGone(self.lost or "the flow's process has ended")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(pack((request_id, op, args)))
            return await future
        finally:
            self._pending.pop(request_id, None)

    async def stop(self, drain_timeout: float) -> Any:
        """Ask the flow to stop and drain; wait for the process to end (killed when it takes
        longer than ``drain_timeout`` plus :data:`STOP_GRACE`). The ``ended`` value, or None."""
        if self.alive:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._writer.write(pack((-1, "stop", ())))
        try:
            await asyncio.wait_for(self.closed.wait(), drain_timeout + STOP_GRACE)
        except TimeoutError:
            log.error("the flow's process did not stop in time: killing it")
        await self.close()
        return self.result

    async def close(self) -> None:
        """Close the channel and make sure the process is gone (SIGKILL when it lingers)."""
        self._writer.close()
        if await _wait(self.proc, STOP_GRACE) is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await _wait(self.proc, None)
        await asyncio.wait({self._reading}, timeout=STOP_GRACE)

    # ---- reading -------------------------------------------------------------------------
    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                frame = await read_frame(reader)
                self._dispatch(frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:  # a frame that does not unpickle: the process cannot be trusted
            log.exception("the flow's process sent a bad frame; stopping it")
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        if self.result is None:  # no end reported: it died; its exit code says how
            self.lost = why_ended(await _wait(self.proc, STOP_GRACE))
            log.error("%s", self.lost)
        gone = ProcessGone(self.lost or "the flow's process has ended")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(gone)
        self.closed.set()

    def _dispatch(self, frame: tuple[Any, ...]) -> None:
        kind = frame[0]
        if kind == "state":
            push: Push = frame[1]
            relog(push.logs, push.dropped_logs)
            self._on_push(push)
        elif kind == "reply":
            _, request_id, ok, value = frame
            future = self._pending.get(request_id)
            if future is not None and not future.done():
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value.rebuild())
        elif kind == "ended":
            self.result = frame[1]


#: The process started ahead (imports done, waiting for its first frame), and its socket.
_spare: tuple[subprocess.Popen[bytes], socket.socket] | None = None


def _start_process() -> tuple[subprocess.Popen[bytes], socket.socket]:
    """A flow process, started now; its output goes where the editor's does (its log)."""
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flowengine.ui.hostproc",
                str(theirs.fileno()),
                str(os.getpid()),
            ],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


def _take_spare() -> tuple[subprocess.Popen[bytes], socket.socket]:
    """The process started ahead if it still waits, else a new one; and the next one ahead."""
    global _spare
    taken, _spare = _spare, None
    if taken is not None and taken[0].poll() is not None:
        taken[1].close()
        taken = None
    if taken is None:
        taken = _start_process()
    _spare = _start_process()
    return taken


def prewarm() -> None:
    """Start a flow process ahead (the editor at start-up: its first flow starts sooner)."""
    global _spare
    if _spare is None or _spare[0].poll() is not None:
        _spare = _start_process()


async def _wait(proc: subprocess.Popen[bytes], timeout: float | None) -> int | None:
    """``proc``'s exit code once it ended (waited for in a thread); None after ``timeout``."""
    try:
        return await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        return None


def relog(lines: list[LogLine], dropped: int) -> None:
    """Log the flow process's records here, under their own names and levels."""
    for line in lines:
        logger = logging.getLogger(line.name)
        if logger.isEnabledFor(line.level):
            record = logging.makeLogRecord(
                {
                    "name": line.name,
                    "levelno": line.level,
                    "levelname": logging.getLevelName(line.level),
                    "msg": line.message,
                    "created": line.created,
                    "node": line.node,
                }
            )
            logger.handle(record)
    if dropped:
        log.warning("the flow's process logged %d more lines than the editor keeps", dropped)


def failure(result: Any) -> Exception | None:
    """The exception an ``ended`` value carries, if any."""
    return result.rebuild() if isinstance(result, Failure) else None
