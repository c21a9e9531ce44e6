"""``flowengine edit``: the browser editor, serving a flow (run inside it) or a folder of flows.

It listens on 127.0.0.1 unless told otherwise; any other address needs a password in
``FLOWENGINE_EDITOR_PASSWORD`` (checked before anything is served). Whatever the address, it
answers only requests whose Host header names it (loopback names, the listening address,
``FLOWENGINE_EDITOR_ALLOWED_HOSTS``): a web page on a DNS-rebound name gets 403. NiceGUI is
imported only here, when the command runs, so ``flowengine run`` never loads it.
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
    help="Admit nodes that run Python from the flow file (the `python` node). Without it the "
    "editor refuses them, whatever the flow's own `settings: {allow_code: true}` says.",
)
@click.option(
    "--output-root",
    type=click.Path(file_okay=False, path_type=Path),
    help="The only folder nodes may write files in (default: an `out` folder beside the flow "
    "file or beside its folder). Flow, flow test and .env files are refused anywhere.",
)
@click.option(
    "--flow-cpus",
    metavar="CPUS",
    help="CPUs the flows run on, apart from the editor (e.g. 1, or 2-3): on an edge box, cores "
    "kept for the flows whatever the editor's viewers do.",
)
def edit(
    target: Path,
    host: str,
    port: int,
    no_run: bool,
    allow_code: bool,
    output_root: Path | None,
    flow_cpus: str | None,
) -> None:
    """Open the browser editor on TARGET (a flow file, run inside the editor, or a folder).

    Binding to anything but loopback (e.g. --host 0.0.0.0) requires FLOWENGINE_EDITOR_PASSWORD;
    sessions are signed with FLOWENGINE_EDITOR_SECRET (random per start when unset); what
    editor access allows is in docs/editor-security.md. Names
    users reach it by, beyond loopback and the --host address, go in
    FLOWENGINE_EDITOR_ALLOWED_HOSTS (comma-separated); a reverse proxy whose X-Forwarded-For
    is to be believed, in FLOWENGINE_EDITOR_TRUSTED_PROXIES.
    """
    from flowengine.ui import auth
    from flowengine.ui.reading import OUTPUT_ROOT_ENV
    from flowengine.validate import NO_FILE_CODE_ENV

    try:
        password = auth.password_from_env(host)
    except auth.InsecureBind as exc:
        raise click.UsageError(str(exc)) from None
    # NiceGUI keeps sessions in files, by default in the working directory (a repository)
    os.environ.setdefault("NICEGUI_STORAGE_PATH", str(Path.home() / ".cache" / "flowengine-editor"))
    # uvicorn would believe X-Forwarded-For from any local process; only from named proxies
    os.environ["FORWARDED_ALLOW_IPS"] = auth.trusted_proxies()
    try:
        from nicegui import app

        from flowengine.ui.app import Editor, EditorConfig, serve
    except ImportError as exc:  # the editor extra is not installed
        click.echo(f"the editor needs 'flowengine[editor]': {exc}", err=True)
        sys.exit(1)
    # for the editor and every process it starts (test runs, flow workers): the flow's own
    # settings.allow_code admits no code here, and nodes write inside the output root
    os.environ[NO_FILE_CODE_ENV] = "1"
    if output_root is not None:
        os.environ[OUTPUT_ROOT_ENV] = str(output_root.resolve())
    if flow_cpus:
        from flowengine.ui.hostproc import CPUS_ENV, cpu_set

        try:
            cpu_set(flow_cpus)
        except ValueError:
            raise click.BadParameter(
                f"{flow_cpus!r} is not like 1, 0,2 or 2-3", param_hint="--flow-cpus"
            ) from None
        os.environ[CPUS_ENV] = flow_cpus
    setup_logging("info", "text")
    editor = Editor(EditorConfig(target, password, run=not no_run, allow_code=allow_code))
    auth.protect_sockets(app, editor.guard)
    app.add_middleware(auth.HostCheck, allowed=auth.allowed_hosts(host, port))
    shown = "127.0.0.1" if auth.is_wildcard(host) else host
    shown = f"[{shown}]" if ":" in shown else shown
    click.echo(f"flowengine editor on http://{shown}:{port}/ ({target})", err=True)
    if not auth.is_loopback(host) and not os.environ.get(auth.ALLOWED_HOSTS_ENV):
        also = "" if auth.is_wildcard(host) else f" and {shown}"
        click.echo(
            f"it answers only to loopback names{also}: put the names users type in "
            f"{auth.ALLOWED_HOSTS_ENV} (e.g. editor.example.com,192.168.1.5:{port})",
            err=True,
        )
    serve(editor, host=host, port=port, secret=auth.storage_secret())
