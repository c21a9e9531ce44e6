"""A flow's own process: ``python -m flowengine.ui.hostproc FD EDITOR_PID`` runs one
:class:`~flowengine.runtime.Runtime` for the editor's :class:`~flowengine.ui.host.FlowHost`,
so a busy flow never holds up the editor's event loop.

The editor talks over the socket ``FD`` (frames: :mod:`flowengine.ui.channel`). First it sends
``(sys.path, environment, working directory, log level)`` (the process may have been started
ahead, before those were known), then requests ``(id, op, args)``: ``start`` (a pickled
:class:`CheckedFlow` and the muted debug nodes), ``deploy``, ``fire``, ``set_debug``, and
``stop`` (answered by the ``ended`` frame). This process answers ``("reply", id, ok, value)``
and, unasked, pushes a :class:`Push` every :data:`PUSH_INTERVAL` seconds: the nodes' status,
wire fill and log records, and every :data:`SAMPLE_INTERVAL` the new debug batches and taps
(bounded: :data:`DEBUG_PER_PUSH`, :data:`DEBUG_ROWS`, :data:`DEBUG_BUDGET`, the taps' own
budget). What a push holds is sampled and bounded here, at the source, whatever the editor's
viewers do; when the editor does not keep up (its socket buffer is full) a push is skipped
rather than waited for, so the flow never waits on a viewer. A push answering a request
(deploy, fire, set_debug) holds everything up to that moment. After the run ends it sends a
last push and ``("ended", report)``, then exits. It runs at a lower CPU priority
(:data:`NICE`) than the editor.

It ends its flow (draining, as ``flowengine run`` does) on ``stop``, on SIGTERM, when the
editor's end of the socket closes and when the editor dies (Linux: parent-death signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import signal
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flowengine import loops
from flowengine.deploy import NotRunning
from flowengine.logs import RedactFilter, quiet_libraries, redact
from flowengine.problems import FlowError, Problem
from flowengine.runtime import Runtime, WireKey
from flowengine.types import Batch
from flowengine.ui.channel import open_stream, pack, read_frame
from flowengine.ui.taps import Event, Taps
from flowengine.validate import CheckedFlow

#: Seconds between pushes of the nodes' status and wire fill.
PUSH_INTERVAL = 0.25
#: Seconds between samples of debug batches and taps (they go with a push).
SAMPLE_INTERVAL = 1.0
#: Newest new debug batches sent per debug node and sample; rows kept of each; rows per
#: sample across all debug nodes (the newest first: a node's older batches wait or are skipped).
DEBUG_PER_PUSH = 3
DEBUG_ROWS = 500
DEBUG_BUDGET = 5_000
#: The taps' budget here (see flowengine.ui.taps): their frames cross to the editor.
TAPS_RATE = 10.0
TAPS_BURST = 60.0
#: Log records held between pushes (more are counted as dropped).
LOG_KEEP = 2_000
#: Bytes waiting for the editor beyond which a push is skipped.
HIGH_WATER = 8 * 1024 * 1024
#: Seconds the process waits beyond the flow's drain timeout before it ends regardless.
GRACE = 10.0
#: How much lower the flow's CPU priority is than the editor's (``nice``): a flow that wants
#: every core still gets all the editor leaves, and the editor answers at once.
NICE = 10

log = logging.getLogger("flowengine.hostproc")


@dataclass(slots=True)
class LogLine:
    """One log record of the flow's process, rendered (and redacted) here."""

    name: str
    level: int
    message: str
    created: float
    node: str | None = None


@dataclass(slots=True)
class DebugUpdate:
    """New batches of a debug node; ``generation`` changes when the node was restarted."""

    generation: int
    keep: int | None
    batches: list[Batch]


@dataclass(slots=True)
class Push:
    """The flow's live state, as of one moment."""

    running: bool
    snapshot: list[dict[str, object]]
    fill: dict[WireKey, float]
    debug_nodes: list[str]
    debug: dict[str, DebugUpdate] = field(default_factory=dict)
    taps: dict[str, list[Event]] = field(default_factory=dict)
    skipped: int = 0
    logs: list[LogLine] = field(default_factory=list)
    dropped_logs: int = 0


@dataclass(slots=True)
class Failure:
    """An exception on its way to the editor (one that pickles, else its text)."""

    text: str
    pickled: bytes | None = None
    problems: list[Problem] | None = None

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        if isinstance(exc, FlowError):
            return cls(str(exc), problems=exc.problems)
        text = f"{type(exc).__name__}: {exc}"
        try:
            data = pickle.dumps(exc)
            pickle.loads(data)
        except Exception:
            return cls(text)
        return cls(text, data)

    def rebuild(self) -> Exception:
        if self.problems is not None:
            return FlowError(self.problems)
        if self.pickled is not None:
            with contextlib.suppress(Exception):
                exc = pickle.loads(self.pickled)
                if isinstance(exc, Exception):
                    return exc
        return RuntimeError(self.text)


class Forward(logging.Handler):
    """Keeps the process's log records for the next push (bounded; thread-safe appends)."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RedactFilter())
        self.lines: deque[LogLine] = deque()
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.lines) >= LOG_KEEP:
            self.dropped += 1
            return
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + (record.exc_text or redact(self.formatException(record.exc_info)))
        node = getattr(record, "node", None)
        node = node if isinstance(node, str) else None
        self.lines.append(LogLine(record.name, record.levelno, message, record.created, node))

    def formatException(self, exc_info: Any) -> str:
        return logging.Formatter().formatException(exc_info)

    def take(self) -> tuple[list[LogLine], int]:
        out: list[LogLine] = []
        while True:
            try:
                out.append(self.lines.popleft())
            except IndexError:
                break
        dropped, self.dropped = self.dropped, 0
        return out, dropped


class Sampler:
    """What is new since the last push: debug batches and taps (references kept, so an
    object's identity stands for it)."""

    def __init__(self) -> None:
        self._debug: dict[str, tuple[int, list[Batch]]] = {}
        self._seq = -1
        self.debug_nodes: list[str] = []  # as of the last sample

    def debug(self, runtime: Runtime, push: Push) -> None:
        budget = DEBUG_BUDGET
        for node_id in runtime.stats:
            try:
                recent = getattr(runtime.node(node_id), "recent", None)
            except KeyError:
                continue
            if not isinstance(recent, deque):
                continue
            push.debug_nodes.append(node_id)
            generation = id(recent)
            old_generation, sent = self._debug.get(node_id, (None, []))
            held = list(recent)
            ids = {id(b) for b in sent} if old_generation == generation else set()
            new = [b for b in held if id(b) not in ids][-DEBUG_PER_PUSH:]
            self._debug[node_id] = (generation, held)
            batches = []
            for b in reversed(new):
                rows = min(len(b.frame.index), DEBUG_ROWS)
                if rows > budget:
                    break
                budget -= rows
                frame = b.frame.head(rows)
                batches.insert(0, Batch(frame, b.topic, b.origin, b.created, b.port, b.error))
            if batches or old_generation != generation:
                push.debug[node_id] = DebugUpdate(generation, recent.maxlen, batches)
        self.debug_nodes = list(push.debug_nodes)

    def taps(self, runtime: Runtime, taps: Taps, push: Push) -> None:
        last = self._seq
        for node_id in runtime.stats:
            events = taps.events(node_id)
            new: list[Event] = []
            for event in reversed(events):
                if event.seq <= self._seq:
                    break
                new.append(event)
                last = max(last, event.seq)
            if new:
                push.taps[node_id] = new[::-1]
        self._seq = last
        push.skipped = taps.skipped


class FlowChild:
    """The flow's process: one run, driven by the editor's requests."""

    def __init__(self, writer: asyncio.StreamWriter, forward: Forward) -> None:
        self.writer = writer
        self.forward = forward
        self.runtime: Runtime | None = None
        self.run_task: asyncio.Task[Any] | None = None
        self.taps = Taps(rate=TAPS_RATE, burst=TAPS_BURST)
        self.sampler = Sampler()
        self.muted: set[str] = set()
        self.finished = asyncio.Event()
        self.terminating = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._pusher: asyncio.Task[None] | None = None
        self._sampled = 0.0  # when debug batches and taps were last sampled (loop time)
        self._lock = asyncio.Lock()

    # ---- the channel ---------------------------------------------------------------------
    async def read(self, reader: asyncio.StreamReader) -> None:
        """Requests until the editor's end closes; then the flow stops."""
        try:
            while True:
                request_id, op, args = await read_frame(reader)
                task = asyncio.create_task(self.handle(request_id, op, args))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:  # a frame that does not unpickle: nothing more can be trusted
            log.exception("bad request from the editor; stopping the flow")
        self.terminate()

    def send(self, obj: Any) -> None:
        if self.writer.is_closing():
            return
        try:
            frame = pack(obj)
        except Exception as exc:  # something in it does not pickle: said, not sent
            print(f"flow process: cannot send {obj[0]}: {exc!r}", file=sys.stderr, flush=True)
            return
        self.writer.write(frame)

    async def handle(self, request_id: int, op: str, args: tuple[Any, ...]) -> None:
        if op == "stop":
            self.terminate()
            return
        if op == "start":
            await self.start(request_id, *args)
            return
        try:
            value = await getattr(self, f"op_{op}")(*args)
        except Exception as exc:
            self.send(("reply", request_id, False, Failure.of(exc)))
        else:
            self.send(("reply", request_id, True, value))

    def terminate(self) -> None:
        """Stop the flow (it drains); with no flow, end the process."""
        self.terminating = True
        if self.runtime is None:
            self.finished.set()
            return
        self.runtime.stop()
        # the runtime's own watchdog ends the drain in time; this ends the process regardless
        limit = self.runtime.settings.drain_timeout + GRACE
        asyncio.get_running_loop().call_later(limit, self.finished.set)

    # ---- requests ------------------------------------------------------------------------
    def _running(self) -> Runtime:
        if self.runtime is None:
            raise NotRunning("the flow is not running")
        return self.runtime

    async def start(self, request_id: int, checked: CheckedFlow, muted: list[str]) -> None:
        """Run ``checked``; answered the moment its node tasks run, before any node could
        keep this loop busy (a flow that spins at once must not hold up ``start``)."""
        answered = False

        def answer(ok: bool, value: Any) -> None:
            nonlocal answered
            if not answered:
                answered = True
                self.send(("reply", request_id, ok, value))

        def started() -> None:
            with contextlib.suppress(Exception):
                self._pusher = asyncio.create_task(self._push_every())
                self.push()
            answer(True, None)

        try:
            async with self._lock:
                if self.runtime is not None:
                    raise RuntimeError("this process runs a flow already")
                runtime = self.runtime = Runtime(checked)
                runtime.observe(self.taps)
                self.muted = set(muted)
                self._mute()  # before any node runs
                runtime.on_started = started
                task = self.run_task = asyncio.create_task(runtime.run(), name="flowengine:run")
                watch = asyncio.create_task(self._watch(task))
                self._tasks.add(watch)
                await asyncio.sleep(0)  # the run's stop signal exists now
                if self.terminating:  # asked to end while the flow was being built
                    runtime.stop()
                waiting = asyncio.create_task(runtime.wait_started())
                try:  # a run that fails at once ends the wait too, and start raises its error
                    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiting.cancel()
                if task.done():
                    task.result()
        except Exception as exc:
            answer(False, Failure.of(exc))
        answer(True, None)  # stopped while starting: started, and ended already

    async def op_deploy(self, checked: CheckedFlow) -> Any:
        async with self._lock:
            report = await self._running().apply(checked)
            self.taps.forget(set(checked.nodes) - {*report.added, *report.restarted})
            self._mute()
            self.push()
            return report

    async def op_fire(self, node_id: str) -> None:
        await self._running().fire(node_id)
        self.push()

    async def op_set_debug(self, node_id: str, on: bool) -> None:
        self._running().set_debug(node_id, on)
        (self.muted.discard if on else self.muted.add)(node_id)
        self.push()  # what the node kept before goes now: nothing of it after the reply

    def _mute(self) -> None:
        """Mute again the debug nodes the editor muted (a restarted node starts on)."""
        assert self.runtime is not None
        for node_id in self.muted:
            with contextlib.suppress(KeyError, TypeError):
                self.runtime.set_debug(node_id, False)

    # ---- pushing -------------------------------------------------------------------------
    def push(self, *, force: bool = True) -> None:
        """Send the live state now (``force=False``: unless the editor is behind)."""
        runtime = self.runtime
        if runtime is None or self.writer.is_closing():
            return
        transport = self.writer.transport
        if not force and transport.get_write_buffer_size() > HIGH_WATER:
            return  # the editor is behind: this sample is skipped, the flow goes on
        push = Push(runtime.running, runtime.snapshot(), runtime.wire_fill(), [])
        now = asyncio.get_running_loop().time()
        if force or now - self._sampled >= SAMPLE_INTERVAL:
            self._sampled = now
            self.sampler.debug(runtime, push)
            self.sampler.taps(runtime, self.taps, push)
        else:
            push.debug_nodes = self.sampler.debug_nodes
        push.logs, push.dropped_logs = self.forward.take()
        self.send(("state", push))

    async def _push_every(self) -> None:
        while True:
            await asyncio.sleep(PUSH_INTERVAL)
            try:
                self.push(force=False)
            except Exception as exc:  # a sample that fails is said, the next one comes
                print(f"flow process: push failed: {exc!r}", file=sys.stderr, flush=True)

    async def _watch(self, task: asyncio.Task[Any]) -> None:
        """When the run ends: the last state, how it ended, and the process ends."""
        try:
            result: Any = await asyncio.shield(task)
        except Exception as exc:
            result = Failure.of(exc)
        try:
            if self._pusher is not None:
                self._pusher.cancel()
            self.push()
            self.send(("ended", result))
            await asyncio.wait_for(self.writer.drain(), GRACE)
        except Exception as exc:  # the editor is gone or behind: the process ends anyway
            log.warning("last state not sent: %s: %s", type(exc).__name__, exc)
        finally:
            self.finished.set()


def _die_with_parent(editor_pid: int) -> None:
    """Linux: SIGTERM (a drain) when the editor dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != editor_pid:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


async def serve(fd: int) -> None:
    """Serve the editor on the socket ``fd`` until the flow has ended."""
    import socket

    reader, writer = await open_stream(socket.socket(fileno=fd))
    try:  # started ahead: it waits here until a flow needs it
        path, environ, cwd, level = await read_frame(reader)  # the editor's, as of the start
    except (asyncio.IncompleteReadError, ConnectionError):
        return  # the editor ended without needing it
    sys.path[:0] = [p for p in path if p not in sys.path]
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    forward = Forward()
    root = logging.getLogger()
    root.handlers[:] = [forward]
    root.setLevel(level)
    quiet_libraries(logging.getLevelName(level).lower())
    child = FlowChild(writer, forward)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, child.terminate)
    reading = asyncio.create_task(child.read(reader))
    await child.finished.wait()
    reading.cancel()
    if child._tasks:
        await asyncio.wait(child._tasks, timeout=10)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.drain(), 10)
    writer.close()


#: CPUs the flow processes run on (e.g. ``"1"`` or ``"2-3"``), apart from the editor and its
#: viewers: on an edge box, cores kept for the flows (``flowengine edit --flow-cpus``).
CPUS_ENV = "FLOWENGINE_FLOW_CPUS"


def cpu_set(text: str) -> set[int]:
    """``"1"``, ``"0,2"``, ``"2-3"`` as CPU numbers (empty text: none)."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def _pin(text: str) -> None:
    """Run on the CPUs ``text`` names (nothing when empty or not possible here)."""
    try:
        cpus = cpu_set(text)
        if cpus and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cpus)
    except (ValueError, OSError) as exc:
        log.warning("%s=%r not applied: %s", CPUS_ENV, text, exc)


def main() -> None:
    fd, editor_pid = int(sys.argv[1]), int(sys.argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the editor, which stops us
    with contextlib.suppress(OSError):  # the editor comes first when both want a core
        os.nice(NICE)
    _pin(os.environ.get(CPUS_ENV, ""))
    _die_with_parent(editor_pid)
    loops.run(serve(fd))  # uvloop when installed, as `flowengine run`
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the flow has drained and closed its nodes: skip the interpreter's teardown


if __name__ == "__main__":  # as the module, so what is pickled names flowengine.ui.hostproc
    from flowengine.ui.hostproc import main as module_main

    module_main()
