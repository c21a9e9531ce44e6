"""The browser editor: palette left, canvas centre, properties / debug / info / problems right.

One :class:`Editor` per process is the workspace: an :class:`EditorModel` per open flow file and
a ``FlowHost`` per flow (each flow runs in a process of its own); a browser tab is bound to the
file in its address, and tabs on one file share its model. ``root(editor)`` is
the NiceGUI root page (``ui.run(root)``, and ``user_simulation(root=...)`` in tests).

The parts: :mod:`.editor` (the shared state), :mod:`.pages` (login, folder, editor pages),
:mod:`.editor_view` (one tab's layout and events), :mod:`.toolbar`, :mod:`.deploying` (deploy
and the disk banner), :mod:`.transfer` (import and export).
"""

from __future__ import annotations

from nicegui import app, ui

from flowengine.ui.editor import Editor, EditorConfig
from flowengine.ui.pages import root

__all__ = ["Editor", "EditorConfig", "root", "serve"]


def serve(editor: Editor, *, host: str, port: int, secret: str) -> None:
    """Run the editor's web server until Ctrl-C (blocks)."""
    app.on_startup(editor.serving)  # a flow process started ahead
    app.on_startup(editor.serving)  # a spare flow process starts while the first page loads
    app.on_shutdown(editor.shutdown)
    ui.run(
        root(editor),
        host=host,
        port=port,
        title="flowengine editor",
        storage_secret=secret,
        reload=False,
        show=False,
        show_welcome_message=False,
        favicon="🔀",
    )
