"""Deploy from the editor, and what happens when the file changed on disk (another editor, a
text editor, a node) since this tab's model read or wrote it: nothing is overwritten until the
user chooses to reload theirs, overwrite with mine, or keep both (mine as a copy next to it).

A banner says so as soon as it is noticed; a Deploy that finds it asks in a dialog with the
difference. "Overwrite" holds for the version on disk the user saw: a later change asks again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from nicegui import ui

from flowengine.problems import FlowError
from flowengine.ui.disk import content_hash, disk_diff, write_copy
from flowengine.ui.editor import Editor
from flowengine.ui.model import DiskChanged, EditorModel

log = logging.getLogger("flowengine.editor")


class DeployBanner:
    """The disk-change banner of one tab, its choices, and the deploy that respects them."""

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
        #: The content hash of the version on disk the user chose to overwrite with theirs.
        self.kept: str | None = None
        self.banner = ui.row().classes("w-full items-center bg-amber-2 px-4 py-1 text-body2")
        with self.banner:
            ui.icon("warning", color="orange")
            ui.label(
                "The file changed on disk since it was opened: deploying would overwrite it."
            ).mark("disk-warning")
            self._choices("disk")
        self.banner.visible = False

    def _choices(self, prefix: str) -> None:
        """The three ways out, as buttons marked ``{prefix}-reload``, ``-keep``, ``-copy``."""
        ui.button("Reload theirs", on_click=self.reload).props("flat dense").mark(
            f"{prefix}-reload"
        ).tooltip("Discard my changes and show the file as it is on disk")
        ui.button("Overwrite with mine", on_click=self.keep).props("flat dense").mark(
            f"{prefix}-keep"
        ).tooltip("The next deploy writes my version over theirs")
        ui.button("Keep both", on_click=self.copy).props("flat dense").mark(
            f"{prefix}-copy"
        ).tooltip("Save my version as a copy next to the file, then show theirs")

    @property
    def keep_mine(self) -> bool:
        """The user chose to overwrite the version on disk now (not a later one)."""
        return self.kept is not None and (content_hash(self.model.path) or "gone") == self.kept

    async def deploy(self) -> None:
        """Validate, save and apply; every outcome is told in a toast, a conflict in a dialog."""
        try:
            message = await self.editor.deploy(self.model, force=self.keep_mine)
        except FlowError as exc:
            errors = [p for p in exc.problems if p.is_error]
            ui.notify(f"Not deployed: {len(errors)} error(s), see Problems", type="negative")
            self.on_invalid()
            return
        except DiskChanged:
            self.kept = None
            self.banner.visible = True
            ui.notify("Not deployed: the file changed on disk", type="warning")
            self.ask()
            return
        except Exception as exc:
            log.exception("deploy failed")
            ui.notify(f"Deploy failed: {exc}", type="negative")
            return
        self.kept = None
        self.banner.visible = False
        ui.notify(message, type="warning" if "failed:" in message else "positive")
        self.on_deployed()

    def ask(self) -> None:
        """The conflict dialog: what differs, and the three choices (one of them deploys)."""
        with ui.dialog() as dialog, ui.card().classes("w-[48rem] max-w-full"):
            ui.label(f"{self.model.path.name} changed on disk").classes("text-h6")
            ui.label(
                "Someone else (another editor, a program, a flow) wrote this file since you "
                "opened it. Nothing was written. Choose what to keep:"
            ).classes("text-body2")
            with ui.expansion("What differs (on disk -> mine)").classes("w-full"):
                ui.code(disk_diff(self.model.path, self.model.text), language="diff").classes(
                    "w-full text-xs"
                ).mark("conflict-diff")

            async def overwrite() -> None:
                self.keep()
                dialog.close()
                with self.banner:  # the toasts of the deploy, after the dialog is gone
                    await self.deploy()

            def then(action: Callable[[], None]) -> Callable[[], None]:
                return lambda: (action(), dialog.close())[0]  # closing deletes the dialog

            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Reload theirs", on_click=then(self.reload)).props("flat").mark(
                    "conflict-reload"
                )
                ui.button("Keep both", on_click=then(self.copy)).props("flat").mark("conflict-copy")
                ui.button("Overwrite with mine", on_click=overwrite).props("color=negative").mark(
                    "conflict-overwrite"
                )
        dialog.on_value_change(lambda e: None if e.value else dialog.delete())
        dialog.open()

    def check(self) -> None:
        """Show the banner when the file changed on disk (unless the user chose to overwrite
        exactly the version there)."""
        changed = self.model.changed_on_disk()
        self.banner.visible = changed and not self.keep_mine

    def reload(self) -> None:
        try:
            self.model.reload()
        except FlowError as exc:  # the file on disk is broken now: keep what is shown
            ui.notify(f"Not reloaded: {exc}", type="negative", multi_line=True)
            return
        self.kept = None
        self.banner.visible = False
        self.on_reloaded()

    def keep(self) -> None:
        self.kept = content_hash(self.model.path) or "gone"
        self.banner.visible = False

    def copy(self) -> None:
        """Keep both: my version goes to a new file next to it, the model shows theirs."""
        try:
            saved = write_copy(self.model.path, self.model.text)
        except OSError as exc:
            ui.notify(f"Could not save a copy: {exc}", type="negative")
            return
        ui.notify(f"Your version was saved as {saved.name}", type="positive", multi_line=True)
        self.reload()
