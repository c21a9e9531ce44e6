"""The runtime's record of one running node: its instance, inbox, outgoing wires and run state.

Kept apart from the executor so that wiring, sending, the node task and deploy all read the
same small record without importing each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from flowengine.clock import SYSTEM_CLOCK, Clock
from flowengine.context import Observer
from flowengine.inbox import Inbox, Wire
from flowengine.logs import RateLimiter
from flowengine.node import Node
from flowengine.settings import RetryPolicy
from flowengine.status import NodeStats
from flowengine.types import Batch
from flowengine.validate import BuiltNode, CheckedFlow

if TYPE_CHECKING:
    from flowengine.buffer import SinkBuffer

#: A wire as (source node, output port, destination node, input port).
WireKey: TypeAlias = tuple[str, str, str, str]
#: A transform's ``process`` or a sink's ``write``, plain or ``async`` (``handler_is_async``
#: says which, so its return is only known at run time).
Handler: TypeAlias = Callable[[Batch], Any]

#: Start order by kind: sinks first, then transforms, then sources.
KIND_ORDER = {"sink": 0, "transform": 1, "source": 2}


class NodeLogAdapter(logging.LoggerAdapter[logging.Logger]):
    """Prefixes messages with the node id and attaches it to the record for JSON logs."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs.setdefault("extra", {}).update(extra)
        return f"node '{extra['node']}': {msg}", kwargs


@dataclass(slots=True, eq=False)
class NodeRun:
    """Everything the runtime keeps for one running node."""

    built: BuiltNode
    node: Node[Any]
    stats: NodeStats
    log: NodeLogAdapter
    retry: RetryPolicy
    capacity: int
    inbox: Inbox | None = None
    outputs: dict[str, list[Wire]] = field(default_factory=dict)
    started: bool = False
    attempt: int = 0
    next_delay: float | None = None
    handler: Handler | None = None
    handler_is_async: bool = False
    error_log: RateLimiter = field(default_factory=RateLimiter)
    task: asyncio.Task[None] | None = None
    #: Set when a deploy removes or replaces this run.
    halt: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set after the first start attempt (a new source waits for its new consumers).
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: The replaced run's task, which must end (close) before this run starts.
    after: asyncio.Task[None] | None = None
    gate: list[asyncio.Event] = field(default_factory=list)
    #: True once the node reads and sends no more (its stream has ended).
    ended: bool = False
    #: Replaced or removed by a deploy: the node id's status is no longer this run's to set.
    retired: bool = False
    #: Deliveries waiting on a full wire, and wires a deploy took away meanwhile.
    delivering: int = 0
    dropped: list[Wire] = field(default_factory=list)
    #: The task of a sink's plain ``write`` that had to wait (see ``NodeTasks._handle``).
    waiting: asyncio.Task[Any] | None = None
    #: The store-and-forward buffer of a sink with ``buffer:`` (see flowengine.buffer).
    buffer: SinkBuffer | None = None
    #: The node's clock (its context's): new batches are stamped with its time.
    clock: Clock = SYSTEM_CLOCK
    #: True while a transform or sink handles a batch (``Runtime.settled`` waits for it).
    handling: bool = False
    #: Sees every send and error (a test harness); None in production.
    observer: Observer | None = None

    #: The node's id (read on every send).
    id: str = field(init=False)

    def __post_init__(self) -> None:
        self.id = self.built.defn.id


def active_nodes(checked: CheckedFlow) -> list[BuiltNode]:
    """The nodes that run: built, enabled and in the graph."""
    return [b for n, b in checked.nodes.items() if not b.defn.disabled and n in checked.graph]
