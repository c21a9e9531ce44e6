"""``flowengine edit``: the browser editor, serving a flow (run inside it) or a folder of flows.

It listens on 127.0.0.1 unless told otherwise; any other address needs a password in
``FLOWENGINE_EDITOR_PASSWORD`` (checked before anything is served).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from flowengine.logs import setup_logging


@click.command("edit")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-run", is_flag=True, help="Edit only: do not run the flow in the editor.")
@click.option(
    "--allow-code",
    is_flag=True,
    help="Admit nodes that run Python from the flow file (the `python` node).",
)
def edit(target: Path, host: str, port: int, no_run: bool, allow_code: bool) -> None:
    """Open the browser editor on TARGET (a flow file, run inside the editor, or a folder).

    Binding to anything but loopback (e.g. --host 0.0.0.0) requires FLOWENGINE_EDITOR_PASSWORD;
    sessions are signed with FLOWENGINE_EDITOR_SECRET (random per start when unset).
    """
    from flowengine.ui.auth import InsecureBind, password_from_env, storage_secret

    try:
        password = password_from_env(host)
    except InsecureBind as exc:
        raise click.UsageError(str(exc)) from None
    # NiceGUI keeps sessions in files, by default in the working directory (a repository)
    os.environ.setdefault("NICEGUI_STORAGE_PATH", str(Path.home() / ".cache" / "flowengine-editor"))
    try:
        from flowengine.ui.app import Editor, EditorConfig, serve
    except ImportError as exc:  # the editor extra is not installed
        click.echo(f"the editor needs 'flowengine[editor]': {exc}", err=True)
        sys.exit(1)
    setup_logging("info", "text")
    editor = Editor(EditorConfig(target, password, run=not no_run, allow_code=allow_code))
    click.echo(f"flowengine editor on http://{host}:{port}/ ({target})", err=True)
    serve(editor, host=host, port=port, secret=storage_secret())
