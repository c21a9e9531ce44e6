"""``flowengine run FLOW --worker I/N``: worker I of N of a flow that reads a partitioned stream.

A source type that reads partitions (``nats_in`` on a stream ``nats_out`` fills with
``partition_by``) offers a :class:`Partitioning` (``Source.partitioning``). Worker I then runs,
for every partition p with ``p % N == I``, its own copy of the flow (a :class:`Runtime`) whose
partitioned sources read only p, so all rows of one key (a line) reach one copy and per-key
state (windows, features, alerts) stays correct. The copies share nothing but the process.

Each copy checkpoints its node states into a store another host can read (the source's, e.g. a
NATS KV bucket, or ``--checkpoint-store URL``), under the key ``<flow>.p<p>``: a worker that
starts on a partition restores that state first, wherever it ran before. The source confirms
upstream only what a saved checkpoint covers (``Source.committed``), so a worker killed on one
host loses nothing when another takes its partitions over.

Workers register in the source's registry (a KV bucket with leases): a worker started with
another N than its live peers is refused (stop all, then start all with the new N: the state
moves with the partitions), and one whose index is held by a live peer waits for that lease.
The core names no transport: the family provides the :class:`Partitioning`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any, Protocol, TypeVar

from flowengine.checkpoint import CheckpointBackend, StoreUnavailable, open_backend
from flowengine.durable import state_folder
from flowengine.envsubst import load_env
from flowengine.model import Flow
from flowengine.node import NodeConfig, Source
from flowengine.problems import FlowError
from flowengine.registry import Registry
from flowengine.runtime import RunReport, Runtime
from flowengine.status import NodeStats
from flowengine.validate import CheckedFlow, load_flow

log = logging.getLogger("flowengine.worker")
T = TypeVar("T")
#: The checkpoint interval of a worker's flow that sets none: its state must move with it.
DEFAULT_CHECKPOINT = 1.0
#: What a worker retries (a server away, a stream not created yet), with the flow's backoff.
PASSING = (ConnectionError, TimeoutError, LookupError, StoreUnavailable)


class WorkerRefused(Exception):
    """This worker must not run (another N than its peers', a lease lost, a bad setup)."""


class Partitioning(Protocol):
    """What a partitioned source's family provides to the workers. Creating one must not
    connect (it is also made just to ``narrow`` a config); ``open`` does."""

    #: Seconds a worker's registration lives without a heartbeat (it beats every quarter).
    lease: float

    async def open(self) -> int:
        """Connect; the partition count of the source's stream. Raises a :data:`PASSING`
        error while it cannot be known yet, ``ValueError`` when the stream is not partitioned."""

    def narrow(self, partition: int) -> NodeConfig:
        """The source's config reading only ``partition``."""

    def store(self, key: str) -> CheckpointBackend:
        """Where the checkpoint ``key`` (one partition of one flow) lives, readable from any
        host that can reach the source."""

    async def join(self, group: str, index: int, count: int) -> None:
        """Register as worker ``index`` of ``count`` of ``group``: raise :class:`WorkerRefused`
        when live peers run with another count; wait while a live peer holds ``index``."""

    async def beat(self) -> None:
        """Renew the registration; :class:`WorkerRefused` when another worker took it."""

    async def leave(self) -> None:
        """End the registration (a clean stop)."""

    async def close(self) -> None:
        """Release connections."""


def parse_worker(text: str) -> tuple[int, int]:
    """``"I/N"`` as ``(I, N)`` with 0 <= I < N; ``ValueError`` saying how otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise ValueError(f"'{text}': give the worker as I/N, e.g. 0/2 (worker 0 of 2)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise ValueError(f"'{text}': I/N needs N >= 1 and 0 <= I < N")
    return index, count


def flow_key(flow: Flow) -> str:
    """The flow's name in store keys and registries: its ``name``, else its file's stem."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", flow.name or flow.path.stem).strip("_") or "flow"


def checkpointed(checked: CheckedFlow, state_dir: str | None = None) -> CheckedFlow:
    """``checked`` with checkpoints on (every second unless it sets an interval), and its
    local state (journals, sink buffers) in ``state_dir`` when given."""
    settings = checked.flow.settings
    update: dict[str, Any] = {"checkpoint": settings.checkpoint or DEFAULT_CHECKPOINT}
    if state_dir is not None:
        update["state_dir"] = state_dir
    flow = replace(checked.flow, settings=settings.model_copy(update=update))
    return replace(checked, flow=flow)


def partitioned(checked: CheckedFlow) -> dict[str, Partitioning]:
    """The flow's partitioned sources, by node id."""
    found: dict[str, Partitioning] = {}
    for node_id, built in checked.nodes.items():
        if issubclass(built.cls, Source):
            hook = built.cls.partitioning(built.config)
            if hook is not None:
                found[node_id] = hook
    return found


class Worker:
    """Worker ``index`` of ``count``: one :class:`Runtime` per partition it owns.

    ``load(extra)`` checks the flow file again with ``extra`` variables over its environment
    (``FLOWENGINE_PARTITION``, ``FLOWENGINE_WORKER``), so a sink may name a file per partition:
    ``sqlite:///out-${FLOWENGINE_PARTITION:-all}.db``. ``stats`` (keys ``<node>@p<p>``), ``flow``
    (its name says the worker and its partitions) and ``stopping`` are what the live table and
    ``/metrics`` read, as of a Runtime.
    """

    def __init__(
        self,
        checked: CheckedFlow,
        load: Callable[[Mapping[str, str]], CheckedFlow],
        index: int,
        count: int,
        store_url: str | None = None,
    ) -> None:
        self.checked, self.load = checked, load
        self.index, self.count = index, count
        self.store_url = store_url
        self.key = flow_key(checked.flow)
        self.flow = checked.flow
        self.stats: dict[str, NodeStats] = {}
        self.runtimes: dict[int, Runtime] = {}
        #: The partitions this worker owns, once the stream's count is known.
        self.partitions: list[int] = []
        self._stopped = asyncio.Event()
        self._lost: WorkerRefused | None = None

    @property
    def name(self) -> str:
        return f"worker {self.index}/{self.count}"

    @property
    def stopping(self) -> bool:
        return self._stopped.is_set()

    def stop(self) -> None:
        """Stop every partition's flow (each drains, and saves its last checkpoint)."""
        if not self._stopped.is_set():
            log.info("%s stopping: draining %d partition(s)", self.name, len(self.runtimes))
            self._stopped.set()
        for runtime in self.runtimes.values():
            runtime.stop()

    async def run(self, duration: float | None = None) -> RunReport:
        """Join the workers, run the owned partitions until ``stop`` (or ``duration``), leave."""
        began = time.monotonic()
        sources = partitioned(self.checked)
        if not sources:
            raise WorkerRefused(
                f"{self.name}: {self.checked.flow.path} has no partitioned source (nats_in on "
                "a stream that nats_out partitions): nothing to split"
            )
        timer = None
        if duration is not None:
            timer = asyncio.get_running_loop().call_later(duration, self.stop)
        first = next(iter(sources.values()))
        try:
            count = await self._partition_count(sources)
            if count is not None and await self._retrying(
                partial(self._join, first), "joining the workers"
            ):
                try:
                    return await self._run_partitions(first, count, began)
                finally:
                    with contextlib.suppress(Exception):
                        await first.leave()
            return RunReport(True, time.monotonic() - began)
        finally:
            if timer is not None:
                timer.cancel()
            for source in sources.values():
                await source.close()

    async def _partition_count(self, sources: dict[str, Partitioning]) -> int | None:
        """The partition count every partitioned source agrees on; None when stopped first."""
        counts: dict[str, int] = {}
        for node_id, source in sources.items():
            count = await self._retrying(source.open, f"node '{node_id}': reading the partitions")
            if count is None:
                return None
            counts[node_id] = count
        if len(set(counts.values())) > 1:
            raise WorkerRefused(
                f"the partitioned sources disagree on the partition count: {counts}"
            )
        count = next(iter(counts.values()))
        if self.count > count:
            raise WorkerRefused(
                f"{self.name} refused: {self.count} workers for {count} partitions would leave "
                f"some workers with none; run at most {count} workers"
            )
        return count

    async def _join(self, source: Partitioning) -> bool:
        await source.join(self.key, self.index, self.count)
        return True

    async def _run_partitions(self, source: Partitioning, count: int, began: float) -> RunReport:
        self.partitions = [p for p in range(count) if p % self.count == self.index]
        self.flow = replace(
            self.checked.flow,
            name=f"{self.key} {self.name}: partitions {', '.join(map(str, self.partitions))}",
        )
        log.info("%s owns partitions %s of %d", self.name, self.partitions, count)
        for p in self.partitions:
            runtime = await self._retrying(
                partial(self._runtime, p, source), f"partition {p}: loading its checkpoint"
            )
            if runtime is None:
                break
            self.runtimes[p] = runtime
            self.stats.update({f"{n}@p{p}": s for n, s in runtime.stats.items()})
        beat = asyncio.create_task(self._heartbeat(source), name="worker-heartbeat")
        try:  # every partition drains, even when one failed (that one stops the others)
            ran = await asyncio.gather(
                *(self._one(r) for r in self.runtimes.values()), return_exceptions=True
            )
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        if failed := next((r for r in ran if isinstance(r, BaseException)), None):
            raise failed
        if self._lost is not None:
            raise self._lost
        reports = [r for r in ran if isinstance(r, RunReport)]
        return RunReport(
            all(r.drained for r in reports),
            time.monotonic() - began,
            sum(r.lost_batches for r in reports),
            sum(r.errors for r in reports),
        )

    async def _runtime(self, partition: int, source: Partitioning) -> Runtime:
        """The flow of one partition: checked again with its variables, the partitioned
        sources narrowed to it, local state in its own folder, checkpoints in the store."""
        extra = {
            "FLOWENGINE_PARTITION": str(partition),
            "FLOWENGINE_WORKER": f"{self.index}/{self.count}",
        }
        checked = self.load(extra)
        if not checked.ok:
            raise FlowError(checked.problems)
        nodes = dict(checked.nodes)
        for node_id, hook in partitioned(checked).items():
            nodes[node_id] = replace(nodes[node_id], config=hook.narrow(partition))
        folder = state_folder(checked.flow) / f"p{partition}"
        checked = checkpointed(replace(checked, nodes=nodes), str(folder))
        key = f"{self.key}.p{partition}"
        store = open_backend(self.store_url, key) if self.store_url else source.store(key)
        try:
            return Runtime(checked, checkpoint_store=store)
        except BaseException:
            store.close()
            raise

    async def _one(self, runtime: Runtime) -> RunReport:
        """Run one partition's flow; one that fails stops the others (then it raises)."""
        task = asyncio.create_task(runtime.run())
        await asyncio.sleep(0)  # its stop signal exists now: a stop asked for already lands
        if self.stopping:
            runtime.stop()
        try:
            return await task
        except BaseException:
            self.stop()
            raise

    async def _heartbeat(self, source: Partitioning) -> None:
        """Renew the registration every quarter lease; a lost one stops the worker."""
        while True:
            await asyncio.sleep(source.lease / 4)
            try:
                await source.beat()
            except WorkerRefused as exc:
                log.error("%s", exc)
                self._lost = exc
                self.stop()
                return
            except Exception as exc:  # the server is away: the next beat tries again
                log.warning("%s: heartbeat failed: %s", self.name, exc)

    async def _retrying(self, call: Callable[[], Awaitable[T]], what: str) -> T | None:
        """``call()`` until it succeeds (a :data:`PASSING` error waits with the flow's
        backoff and tries again); None when the worker is stopped first."""
        attempt = 0
        while not self.stopping:
            task = asyncio.ensure_future(call())
            stopped = asyncio.ensure_future(self._stopped.wait())
            try:
                await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                return None
            try:
                return task.result()
            except PASSING as exc:
                delay = self.checked.flow.settings.retry.delay(attempt)
                attempt += 1
                log.warning("%s: %s: %s; retrying in %.1fs", self.name, what, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), delay)
        return None


def runner(
    checked: CheckedFlow,
    registry: Registry,
    worker: tuple[int, int] | None = None,
    store: str | None = None,
    allow_code: bool = False,
) -> Runtime | Worker:
    """What ``flowengine run`` runs: the flow's Runtime (its checkpoints in ``store`` when
    given), or with ``worker`` (I, N) a :class:`Worker` of its partitions."""
    if worker is not None:
        path = checked.flow.path

        def load(extra: Mapping[str, str]) -> CheckedFlow:
            env = load_env(path)
            env.update(extra)
            return load_flow(path, registry, env, allow_code=allow_code)

        return Worker(checked, load, *worker, store_url=store)
    if store is not None:
        backend = open_backend(store, flow_key(checked.flow))
        return Runtime(checkpointed(checked), checkpoint_store=backend)
    return Runtime(checked)
