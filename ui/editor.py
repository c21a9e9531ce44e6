"""The editor's process-wide state, a workspace: every open flow file (an :class:`EditorModel`,
keyed by its resolved path, shared by the browser tabs on that file) and the flow running for it
(one :class:`FlowHost` per flow). Opening a flow never stops another; every action names the
model it is for, so a tab only ever writes the file in its own URL."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path

from flowengine.problems import FlowError
from flowengine.registry import Registry, default_registry
from flowengine.ui import flowproc
from flowengine.ui.auth import Guard
from flowengine.ui.host import FlowHost
from flowengine.ui.model import FLOW_SUFFIXES, EditorModel, flow_files
from flowengine.validate import CheckedFlow

log = logging.getLogger("flowengine.editor")

#: Seconds shutdown waits for a flow's first start under way before it cancels the start.
START_WAIT = 10.0


@dataclass(slots=True)
class EditorConfig:
    """What ``flowengine edit`` was asked for."""

    target: Path  # a flow file, or a folder of flows
    password: str | None = None
    run: bool = True  # run the open flows inside the editor
    allow_code: bool = False


@dataclass(slots=True)
class OpenFlow:
    """One open flow file: its model, its running flow and why it does not run."""

    model: EditorModel
    host: FlowHost | None = None
    error: str | None = None  # why it is not running (shown in the toolbar)
    stopped: bool = False  # stopped with the Stop button: a deploy saves without starting it
    deployed: CheckedFlow | None = None  # what last ran: Start and Restart run it again
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one start/stop/deploy at a time
    starting: asyncio.Task[None] | None = None  # the first start, behind the page

    @property
    def running(self) -> bool:
        return self.host is not None and self.host.running

    def state(self) -> str:
        """The toolbar's run label."""
        if self.running:
            return "running"
        if self.starting is not None and not self.starting.done():
            return "starting"
        if self.stopped:
            return "stopped"
        ended = getattr(self.host, "error", None)  # a flow process that died says why
        return self.error or ended or ("stopped" if self.host is not None else "not running")


class Editor:
    """The open flows and the flows running in this process (shared by every tab)."""

    def __init__(self, config: EditorConfig, registry: Registry | None = None) -> None:
        self.config = config
        self.registry = registry or default_registry()
        self.guard = Guard(config.password)
        self.open_flows: dict[Path, OpenFlow] = {}  # by resolved path, in opening order
        self._last: OpenFlow | None = None
        self._lock = asyncio.Lock()  # opening (one model per file, however many tabs ask)

    def serving(self) -> None:
        """The web server is up: a flow process is started ahead (its imports done), so the
        first flow opened starts without waiting for them."""
        if self.config.run:
            flowproc.prewarm()

    @property
    def folder(self) -> Path | None:
        return self.config.target if self.config.target.is_dir() else None

    def flows(self) -> list[Path]:
        return flow_files(self.folder) if self.folder else [self.config.target]

    # the flow opened last (what the single-file editor has one of; tests read these)
    @property
    def model(self) -> EditorModel | None:
        return self._last.model if self._last else None

    @property
    def host(self) -> FlowHost | None:
        return self._last.host if self._last else None

    @property
    def host_error(self) -> str | None:
        return self._last.error if self._last else None

    def entry(self, model: EditorModel) -> OpenFlow:
        """The open flow of ``model`` (:class:`KeyError` for a model this editor did not open)."""
        entry = self.open_flows[model.path.resolve()]
        if entry.model is not model:
            raise KeyError(model.path)
        return entry

    def host_of(self, model: EditorModel) -> FlowHost | None:
        return self.entry(model).host

    async def open(self, path: Path) -> EditorModel:
        """Open ``path`` (or return its model when open already) and start running it in the
        background (the page does not wait for a flow process); the other open flows go on as
        they are."""
        async with self._lock:
            key = path.resolve()
            entry = self.open_flows.get(key)
            if entry is None:
                model = EditorModel.open(path, self.registry, allow_code=self.config.allow_code)
                entry = self.open_flows[key] = OpenFlow(model)
                if self.config.run:
                    entry.starting = asyncio.create_task(
                        self._first_start(entry), name=f"flowengine:open:{path.name}"
                    )
            self._last = entry
            return entry.model

    async def _first_start(self, entry: OpenFlow) -> None:
        async with entry.lock:  # a deploy or Stop pressed meanwhile waits for it
            if not entry.stopped:
                await self._start(entry, entry.model.checked())

    async def create(self, name: str) -> Path:
        """A new empty flow in the folder (``.yaml`` added unless the name ends in a flow
        suffix; ``.json`` gives a JSON file); :class:`ValueError` for a name like ``.yaml``."""
        assert self.folder is not None
        name = Path(name).name
        if not name.lower().endswith(FLOW_SUFFIXES):
            name += ".yaml"
        EditorModel.create(self.folder / name, self.registry)
        return self.folder / name

    async def _start(self, entry: OpenFlow, checked: CheckedFlow) -> None:
        if not checked.ok:
            entry.error = "not running: the flow has errors (fix them and deploy)"
            return
        host = entry.host or FlowHost()
        try:
            await host.start(checked)
        except Exception as exc:  # shown in the editor; the editor itself stays up
            log.exception("starting %s failed", entry.model.path)
            entry.error = f"not running: {exc}"
            return
        entry.host, entry.error, entry.deployed, entry.stopped = host, None, checked, False

    def _runnable(self, entry: OpenFlow) -> CheckedFlow:
        """What Start runs: the flow as last run, else the file as saved."""
        if entry.deployed is not None:
            return entry.deployed
        if entry.model.dirty:
            raise ValueError("deploy first: the flow has unsaved changes")
        return entry.model.checked()

    async def start(self, model: EditorModel) -> str:
        """Start the flow of ``model`` again (what last ran, else the saved file)."""
        entry = self.entry(model)
        async with entry.lock:
            if entry.running:
                return "Already running"
            await self._start(entry, self._runnable(entry))
            return "Started" if entry.running else f"Not started ({entry.error})"

    async def stop(self, model: EditorModel) -> str:
        """Stop the flow of ``model`` and let it drain; it stays stopped over deploys."""
        entry = self.entry(model)
        async with entry.lock:
            entry.stopped = True
            if entry.host is None or not entry.running:
                return "Not running"
            await entry.host.stop()
            return "Stopped"

    async def restart(self, model: EditorModel) -> str:
        """Stop the flow of ``model`` and start it anew (every node with fresh state)."""
        entry = self.entry(model)
        async with entry.lock:
            checked = self._runnable(entry)
            restart = getattr(entry.host, "restart", None)
            if entry.running and restart is not None and _no_arguments(restart):
                await restart()  # the host's own (a worker process restarts in place)
                entry.stopped = False
            else:
                if entry.host is not None:
                    try:
                        await entry.host.stop()
                    except Exception as exc:  # how the last run ended does not stop this one
                        log.warning("the last run of %s ended with: %s", model.path.name, exc)
                await self._start(entry, checked)
            return "Restarted" if entry.running else f"Not restarted ({entry.error})"

    async def deploy(self, model: EditorModel | None = None, *, force: bool = False) -> str:
        """Validate, save ``model`` (the last opened when None) and apply it to its running
        flow; returns what happened (for a toast).

        Raises :class:`FlowError` for an invalid flow and :class:`DiskChanged` when the file
        changed on disk since it was opened or saved (unless ``force``).
        """
        entry = self.entry(model) if model is not None else self._last
        assert entry is not None
        async with entry.lock:
            checked = entry.model.checked()
            if not checked.ok:
                raise FlowError(checked.problems)
            entry.model.save(force=force)
            if not self.config.run:
                return "Saved"
            if entry.stopped:
                entry.deployed = checked
                return "Saved (the flow is stopped: Start runs it)"
            if entry.host is None:
                await self._start(entry, checked)
                return "Saved and started" if entry.running else f"Saved ({entry.error})"
            report = await entry.host.deploy(checked)  # starts it again if it had ended
            entry.deployed, entry.error = checked, None
            counts = (
                f"{len(report.added)} added, {len(report.removed)} removed, "
                f"{len(report.restarted)} restarted"
            )
            tail = "".join(f"; {node} failed: {why}" for node, why in report.failed.items())
            return f"Deployed: {counts}{tail}"

    async def shutdown(self) -> None:
        """Stop every running flow (together: each drains on its own), also one whose first
        start is under way: it is stopped once it runs, or cancelled (its process killed)
        when it does not run within :data:`START_WAIT` seconds."""

        async def stop(entry: OpenFlow) -> None:
            entry.stopped = True  # a first start that has not begun does not begin
            starting = entry.starting
            if starting is not None and not starting.done():
                try:
                    await asyncio.wait_for(asyncio.shield(starting), START_WAIT)
                except TimeoutError:
                    starting.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await starting
                    log.warning("%s did not start in time: cancelled", entry.model.path.name)
            async with entry.lock:  # after a start under way
                if entry.host is not None:
                    await entry.host.stop()

        entries = list(self.open_flows.values())
        results = await asyncio.gather(*(stop(e) for e in entries), return_exceptions=True)
        for entry, result in zip(entries, results, strict=True):
            if isinstance(result, BaseException):
                log.error("stopping %s failed: %s", entry.model.path.name, result)


def _no_arguments(method: object) -> bool:
    """True when ``method`` can be called with no arguments (a host's ``restart()``)."""
    try:
        params = inspect.signature(method).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params
    )
