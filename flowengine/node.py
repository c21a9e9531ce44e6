"""The node SDK: a node type is one config model (the only spec) and one class.

The contract, written once:

* A **source** emits batches until cancelled. Implement ``start`` (connect), ``read`` (return the
  next batch, or ``None`` when there is nothing this time) and ``close``; or override ``run`` for
  push-style sources and call ``self.ctx.send``. The runtime retries a failing ``start``/``run``
  with backoff and shows ``retrying``; a finite source raises :class:`Done` from ``read``.
* A **transform** implements ``process(batch)`` (plain or ``async``). Returning ``None`` or an
  empty frame drops the batch, returning a frame or batch sends it to ``out``, returning a mapping
  sends per port. Raising routes the error and the batch to the ``error`` port; the flow goes on.
* A **sink** implements ``write(batch)`` (plain or ``async``) and optionally ``flush``.
* Every node may return pending data from ``flush`` at shutdown (it is sent on like a result)
  and releases resources in ``close``. Inputs are read-only: never modify ``batch.frame`` in place.
* A node that keeps state across batches names the attributes in ``state_attrs``: checkpoints
  save them (``snapshot``) and a restart after a crash restores them (``restore``).

Retries, metrics, status timing and logging context belong to the runtime, not to node code.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field

from flowengine.types import Batch, NodeKind, Result

if TYPE_CHECKING:
    from flowengine.context import Context
    from flowengine.worker import Partitioning


class Done(Exception):
    """Raised by a finite source's ``read`` when it has nothing more to emit."""


def option(
    default: Any = ...,
    *,
    description: str = "",
    examples: list[Any] | None = None,
    secret: bool = False,
    advanced: bool = False,
    widget: str | None = None,
    writes: bool = False,
    **kwargs: Any,
) -> Any:
    """A config field with the flags the editor, docs and export read from the JSON Schema.

    ``secret`` fields are masked in logs and exports; ``advanced`` ones fold away in the editor;
    ``widget`` hints a control (``code``, ``textarea``) where the type alone does not say;
    ``writes`` marks a path the node writes (the editor's write policy checks it:
    :mod:`flowengine.paths`).
    """
    extra: dict[str, Any] = {}
    if secret:
        extra["secret"] = True
    if advanced:
        extra["advanced"] = True
    if widget:
        extra["widget"] = widget
    if writes:
        extra["writes"] = True
    return Field(
        default,
        description=description,
        examples=examples,
        json_schema_extra=extra or None,
        **kwargs,
    )


class NodeConfig(BaseModel):
    """Base of every node type's config: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def secret_fields(cls) -> set[str]:
        """Names of the fields marked ``secret``."""
        return {
            name
            for name, info in cls.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")
        }


C = TypeVar("C", bound=NodeConfig)


class Node(Generic[C]):
    """Base class of every node type; see the module docstring for the contract.

    A type names its config once, as the type argument: ``class Filter(Transform[FilterConfig])``
    sets ``Filter.Config`` (what validation, docs and the editor read) and types ``self.config``.
    Resources opened in ``start`` are declared at class level with a ``None`` default, so
    ``close`` can test them without ``hasattr``.
    """

    kind: ClassVar[NodeKind]
    Config: ClassVar[type[NodeConfig]] = NodeConfig
    config: C
    #: The latest batches this node keeps for the editor's debug view; None keeps none.
    recent: deque[Batch] | None = None
    #: Attributes that hold state across batches (open windows, held rows, last values): a
    #: checkpoint saves them and a restart restores them, so they must pickle. Empty: stateless.
    state_attrs: ClassVar[tuple[str, ...]] = ()
    category: ClassVar[str] = "function"
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    outputs: ClassVar[tuple[str, ...]] = ("out",)
    #: Optional libraries as (import name, pip extra); validation names the extra when missing.
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: True for types that run code written in the flow file: they load only on an opt-in.
    runs_code: ClassVar[bool] = False
    #: True for types that talk to the world outside the flow (a device, broker, database,
    #: file, mail server): ``flowengine test`` replaces them by a feeder (sources) or a
    #: capture (sinks) so that a test needs no network. Plugins with I/O set it too.
    io: ClassVar[bool] = False
    #: The type name, set by the registry from the entry point name.
    type_name: ClassVar[str] = ""
    #: The editor's icon for the type (palette and canvas): a Material icon name.
    icon: ClassVar[str] = "settings"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            for arg in get_args(base):
                if isinstance(arg, type) and issubclass(arg, NodeConfig):
                    cls.Config = arg
                    return

    def __init__(self, config: C, ctx: Context) -> None:
        self.config = config
        self.ctx = ctx

    @classmethod
    def output_ports(cls, config: NodeConfig | None) -> tuple[str, ...] | None:
        """Output ports of a node with ``config``, without ``error``; None when they depend on
        a config that is not known (invalid), so that wires are not checked against a guess.

        The class attribute ``outputs`` by default; a type whose ports follow its config (a
        switch's rule names) overrides this, and validation, the runtime and the editor ask here.
        """
        return cls.outputs

    async def start(self) -> None:
        """Open connections and files; called before any batch arrives (sources: connect)."""

    def snapshot(self) -> Any:
        """This node's state for a checkpoint, taken between batches (None when stateless).

        The default saves the attributes named in ``state_attrs``; a node whose state is not
        plain attributes overrides this and :meth:`restore`.
        """
        if not self.state_attrs:
            return None
        return {name: getattr(self, name) for name in self.state_attrs if hasattr(self, name)}

    def restore(self, state: Any) -> None:
        """Take back what :meth:`snapshot` returned; called after ``start``, before any batch."""
        if isinstance(state, dict):
            for name, value in state.items():
                if name in self.state_attrs:
                    setattr(self, name, value)

    async def flush(self) -> Result:
        """Return data still held when the stream ends; it is sent on like a result."""
        return None

    async def close(self) -> None:
        """Release resources. Errors here are logged, never raised to the flow."""


class Source(Node[C]):
    """A node with no inputs that emits batches until cancelled."""

    kind = "source"
    category = "input"
    icon = "input"
    inputs = ()
    #: True when what this source emits after ``restore(state)`` is what it would have
    #: emitted anyway (a simulator, a file or table read from a saved position): checkpoints
    #: keep its state and it needs no ingest journal (a journal costs a disk write per batch).
    replayable: ClassVar[bool] = False
    #: True when the editor may ask it for one extra batch on demand (its inject button).
    firable: ClassVar[bool] = False

    async def read(self) -> Result:
        """Return the next batch (``None`` for nothing this time); raise :class:`Done` at the end."""
        raise NotImplementedError

    async def fire(self) -> Result:
        """One extra batch now, besides the source's own schedule (``Runtime.fire``: the
        editor's inject button, for a ``firable`` type). The default: one more ``read``."""
        return await self.read()

    async def acknowledge(self) -> None:
        """What this source emitted so far is safe on local disk (its ingest journal): confirm
        it upstream now (an MQTT source sends its held acknowledgements). The default does
        nothing: a source whose upstream does not wait for confirmations needs nothing here."""

    async def committed(self, state: Any) -> None:
        """A checkpoint is saved that holds ``state`` for this source (what its ``snapshot``
        returned when the checkpoint's barrier left it): whatever that state covers is safe
        for good, so a ``replayable`` source whose upstream keeps messages until confirmed (a
        JetStream consumer) confirms them now, and needs no ingest journal. Called in
        checkpoint order; for a clean stop's last checkpoint after ``close``. The default does
        nothing."""

    @classmethod
    def partitioning(cls, config: Any) -> Partitioning | None:
        """How ``flowengine run --worker I/N`` splits a flow that reads from this source with
        ``config`` into partitions (see :mod:`flowengine.worker`); None (the default): it is
        not partitioned."""
        return None

    async def run(self) -> None:
        """Emit what ``read`` returns until cancelled or :class:`Done`."""
        reads = 0
        while True:
            try:
                result = await self.read()
            except Done:
                return
            if result is not None:
                await self.ctx.send(result)
            reads += 1
            if reads % 16 == 0:
                await asyncio.sleep(0)  # a read that never waits must not starve the loop


class Transform(Node[C]):
    """A node that turns each input batch into zero or more output batches."""

    kind = "transform"

    def process(self, batch: Batch) -> Result | Awaitable[Result]:
        """Return the result for one batch (may be ``async def`` in subclasses)."""
        raise NotImplementedError


class Sink(Node[C]):
    """A node that writes batches out of the flow."""

    kind = "sink"
    category = "output"
    icon = "output"
    outputs = ()

    def write(self, batch: Batch) -> Awaitable[None] | None:
        """Write one batch (may be ``async def`` in subclasses)."""
        raise NotImplementedError

    def is_transient(self, exc: Exception) -> bool:
        """True when ``write`` failed because the destination is unavailable (retry later),
        not because of the batch: a ``buffer``ed sink keeps the batch and retries it. The
        default: connection errors and timeouts; a sink adds its library's own."""
        return isinstance(exc, OSError | TimeoutError)
