"""The editor's process-wide state: the open flow (an :class:`EditorModel`) and the flow running
inside the editor (a :class:`FlowHost`), shared by every browser tab."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from flowengine.problems import FlowError
from flowengine.registry import Registry, default_registry
from flowengine.ui.auth import Guard
from flowengine.ui.host import FlowHost
from flowengine.ui.model import FLOW_SUFFIXES, EditorModel, flow_files

log = logging.getLogger("flowengine.editor")


@dataclass(slots=True)
class EditorConfig:
    """What ``flowengine edit`` was asked for."""

    target: Path  # a flow file, or a folder of flows
    password: str | None = None
    run: bool = True  # run the open flow inside the editor
    allow_code: bool = False


class Editor:
    """The open flow and the flow running in this process (shared by every tab)."""

    def __init__(self, config: EditorConfig, registry: Registry | None = None) -> None:
        self.config = config
        self.registry = registry or default_registry()
        self.guard = Guard(config.password)
        self.model: EditorModel | None = None
        self.host: FlowHost | None = None
        self.host_error: str | None = None
        self._lock = asyncio.Lock()

    @property
    def folder(self) -> Path | None:
        return self.config.target if self.config.target.is_dir() else None

    def flows(self) -> list[Path]:
        return flow_files(self.folder) if self.folder else [self.config.target]

    async def open(self, path: Path) -> EditorModel:
        """Open ``path`` (closing the previous flow and its run) and start running it."""
        async with self._lock:
            if self.model is not None and self.model.path.resolve() == path.resolve():
                return self.model
            await self._stop()
            self.model = EditorModel.open(path, self.registry, allow_code=self.config.allow_code)
            if self.config.run:
                await self._start()
            return self.model

    async def create(self, name: str) -> Path:
        """A new empty flow in the folder (``.yaml`` added unless the name ends in a flow
        suffix; ``.json`` gives a JSON file); :class:`ValueError` for a name like ``.yaml``."""
        assert self.folder is not None
        name = Path(name).name
        if not name.lower().endswith(FLOW_SUFFIXES):
            name += ".yaml"
        EditorModel.create(self.folder / name, self.registry)
        return self.folder / name

    async def _start(self) -> None:
        assert self.model is not None
        checked = self.model.checked()
        if not checked.ok:
            self.host_error = "not running: the flow has errors (fix them and deploy)"
            return
        host = FlowHost()
        try:
            await host.start(checked)
        except Exception as exc:  # shown in the editor; the editor itself stays up
            log.exception("starting the flow failed")
            self.host_error = f"not running: {exc}"
            return
        self.host, self.host_error = host, None

    async def _stop(self) -> None:
        if self.host is not None:
            host, self.host = self.host, None
            await host.stop()

    async def deploy(self, *, force: bool = False) -> str:
        """Validate, save and apply to the running flow; returns what happened (for a toast).

        Raises :class:`FlowError` for an invalid flow and :class:`DiskChanged` when the file
        changed on disk since it was opened (unless ``force``).
        """
        async with self._lock:
            assert self.model is not None
            checked = self.model.checked()
            if not checked.ok:
                raise FlowError(checked.problems)
            self.model.save(force=force)
            if not self.config.run:
                return "Saved"
            if self.host is None:
                await self._start()
                return "Saved and started" if self.host else f"Saved ({self.host_error})"
            report = await self.host.deploy(checked)  # starts it again if it had ended
            counts = (
                f"{len(report.added)} added, {len(report.removed)} removed, "
                f"{len(report.restarted)} restarted"
            )
            tail = "".join(f"; {node} failed: {why}" for node, why in report.failed.items())
            return f"Deployed: {counts}{tail}"

    async def shutdown(self) -> None:
        await self._stop()
