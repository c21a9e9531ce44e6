"""Deploy from the editor, and the banner shown when the file changed on disk meanwhile:
reload it, or keep this version (the next deploy then overwrites the file)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from nicegui import ui

from flowengine.problems import FlowError
from flowengine.ui.editor import Editor
from flowengine.ui.model import DiskChanged, EditorModel

log = logging.getLogger("flowengine.editor")


class DeployBanner:
    """The disk-change banner of one tab and the deploy that respects it."""

    def __init__(
        self,
        editor: Editor,
        model: EditorModel,
        *,
        on_reloaded: Callable[[], None],
        on_invalid: Callable[[], None],
        on_deployed: Callable[[], None],
    ) -> None:
        self.editor = editor
        self.model = model
        self.on_reloaded = on_reloaded
        self.on_invalid = on_invalid
        self.on_deployed = on_deployed
        #: The user chose to keep this version over the one on disk.
        self.keep_mine = False
        self.banner = ui.row().classes("w-full items-center bg-amber-2 px-4 py-1 text-body2")
        with self.banner:
            ui.icon("warning", color="orange")
            ui.label(
                "The file changed on disk since it was opened: deploying would overwrite it."
            ).mark("disk-warning")
            ui.button("Reload from disk", on_click=self.reload).props("flat dense").mark(
                "disk-reload"
            )
            ui.button("Keep my version", on_click=self.keep).props("flat dense").mark("disk-keep")
        self.banner.visible = False

    async def deploy(self) -> None:
        """Validate, save and apply; every outcome is told in a toast."""
        try:
            message = await self.editor.deploy(force=self.keep_mine)
        except FlowError as exc:
            errors = [p for p in exc.problems if p.is_error]
            ui.notify(f"Not deployed: {len(errors)} error(s), see Problems", type="negative")
            self.on_invalid()
            return
        except DiskChanged:
            self.banner.visible = True
            ui.notify("Not deployed: the file changed on disk", type="warning")
            return
        except Exception as exc:
            log.exception("deploy failed")
            ui.notify(f"Deploy failed: {exc}", type="negative")
            return
        self.keep_mine = False
        self.banner.visible = False
        ui.notify(message, type="warning" if "failed:" in message else "positive")
        self.on_deployed()

    def check(self) -> None:
        """Show the banner when the file changed on disk (unless this version is kept)."""
        if not self.keep_mine:
            self.banner.visible = self.model.changed_on_disk()

    def reload(self) -> None:
        try:
            self.model.reload()
        except FlowError as exc:  # the file on disk is broken now: keep what is shown
            ui.notify(f"Not reloaded: {exc}", type="negative", multi_line=True)
            return
        self.keep_mine = False
        self.banner.visible = False
        self.on_reloaded()

    def keep(self) -> None:
        self.keep_mine = True
        self.banner.visible = False
