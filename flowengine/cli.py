"""The ``flowengine`` command: run, validate, list node types, export.

Exit codes: 0 success, 1 invalid flow or failure, 2 usage error, 3 stopped before the queues
drained (drain timeout), 130 stopped hard by a second signal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from flowengine import __version__, loops
from flowengine.browse import browse
from flowengine.export import FORMATS, export
from flowengine.flowtest.check import flow_test_problems
from flowengine.flowtest.cli import test as flow_tests
from flowengine.flowtest.load import is_test_file
from flowengine.logs import RedactFilter, quiet_libraries, setup_logging
from flowengine.nodedocs import render
from flowengine.registry import Registry, default_registry
from flowengine.running import EXIT_FORCED, run_command
from flowengine.secrets import secrets_cmd
from flowengine.validate import CheckedFlow, load_flow

if TYPE_CHECKING:
    from flowengine.runtime import Runtime
    from flowengine.worker import Worker

log = logging.getLogger("flowengine")
#: The entry point group of CLI subcommands contributed by node families and the editor.
COMMANDS = "flowengine.commands"
EXIT_INVALID = 1
#: Seconds within which a repeated stop signal is the same request, not a second one.
SIGNAL_DEBOUNCE = 1.0
FLOW_PATH = click.Path(exists=True, dir_okay=False, path_type=Path)
ALLOW_CODE = click.option(
    "--allow-code",
    is_flag=True,
    help="Admit nodes that run Python from the flow file (the `python` node). Only for files you trust.",
)


def _registry() -> Registry:
    return default_registry()


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter("must be a finite number of seconds")
    return value


def _worker(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, int] | None:
    from flowengine.worker import parse_worker

    if value is None or not value.strip():
        return None
    try:
        return parse_worker(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _report(checked: CheckedFlow, quiet: bool = False) -> None:
    for problem in checked.problems:
        if problem.is_error or not quiet:
            click.echo(str(problem), err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="flowengine")
def main() -> None:
    """flowengine: run YAML flows of pandas batches from industrial sources to sinks.

    Exit codes: 0 ok, 1 invalid flow or failure, 2 usage error, 3 stopped before the queues
    drained, 130 stopped hard by a second Ctrl-C.
    """


@main.command()
@click.argument("flow", type=FLOW_PATH)
@click.option(
    "--for",
    "duration",
    type=click.FloatRange(min=0),
    callback=lambda _ctx, _param, v: _finite(v),
    help="Run this many seconds, then drain and exit.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve /metrics and /healthz on this port.",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address for the metrics server."
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--live/--no-live", default=None, help="Live status table (default: when stdout is a terminal)."
)
@click.option(
    "--status-interval",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between status log lines when not live (0: none).",
)
@click.option(
    "--worker",
    metavar="I/N",
    envvar="FLOWENGINE_WORKER",
    callback=_worker,
    help="Run as worker I of N of a flow that reads a partitioned stream (nats_in): one copy "
    "of the flow per partition p with p % N == I, its state checkpointed where another host "
    "can take it over. Also FLOWENGINE_WORKER=I/N.",
)
@click.option(
    "--checkpoint-store",
    metavar="URL",
    envvar="FLOWENGINE_CHECKPOINT_STORE",
    help="Keep checkpoints in this store instead of beside the flow (nats-kv://host:4222/bucket); "
    "with --worker the partitioned source's own store is the default. Also "
    "FLOWENGINE_CHECKPOINT_STORE.",
)
@ALLOW_CODE
def run(
    flow: Path,
    duration: float | None,
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
    log_format: str,
    live: bool | None,
    status_interval: float,
    worker: tuple[int, int] | None,
    checkpoint_store: str | None,
    allow_code: bool,
) -> None:
    """Run FLOW until Ctrl-C / SIGTERM (or --for SECONDS), then drain every queue and exit.

    \b
    Examples:
      flowengine run flows/line3.yaml --for 60 --metrics-port 9108
      flowengine run flows/plant-analytics.yaml --worker 0/2   # and 1/2 elsewhere
    """
    live = sys.stdout.isatty() and log_format == "text" if live is None else live
    console = Console()
    if live:
        handler = RichHandler(console=console, show_path=False, markup=False)
        handler.addFilter(RedactFilter())
        logging.basicConfig(
            level=log_level.upper(), handlers=[handler], format="%(message)s", force=True
        )
        quiet_libraries(log_level)
    else:
        setup_logging(log_level, log_format)
    checked = load_flow(flow, _registry(), allow_code=allow_code)
    _report(checked)
    if not checked.ok:
        click.echo(f"{flow}: {len(checked.errors)} error(s); not started", err=True)
        sys.exit(EXIT_INVALID)
    shown = (metrics_port, metrics_host, live, console, status_interval)

    def make() -> Runtime | Worker:
        from flowengine.worker import runner

        return runner(checked, _registry(), worker, checkpoint_store or None, allow_code)

    try:
        code = loops.run(run_command(make, _Signals, duration, *shown))
    except KeyboardInterrupt:
        code = EXIT_FORCED
    except Exception as exc:  # the engine never ends in a traceback for a user
        errors = exc.exceptions if isinstance(exc, ExceptionGroup) else (exc,)
        for error in errors:
            log.error(
                "flow failed: %s: %s", type(error).__name__, error, exc_info=log_level == "debug"
            )
        code = EXIT_INVALID
    sys.exit(code)


class _Signals:
    """SIGINT/SIGTERM: the first drains the flow, a second cancels the running command.

    Signals less than :data:`SIGNAL_DEBOUNCE` seconds after the first count as the same one: a
    process-group signal (``timeout``, some init systems) can deliver two at once.
    """

    def __init__(self, runtime: Runtime | Worker) -> None:
        self.runtime = runtime
        self.main_task = asyncio.current_task()
        self.forced = False
        self.first: float | None = None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.on_signal, signum)

    def on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        now = time.monotonic()
        if self.first is None or not self.runtime.stopping:
            self.first = now
            log.info("%s received: draining (again to force)", name)
            self.runtime.stop()
        elif now - self.first < SIGNAL_DEBOUNCE:
            log.debug("%s within %.0fs of the first: same stop request", name, SIGNAL_DEBOUNCE)
        else:
            log.warning("second %s: stopping now without draining", name)
            self.forced = True
            assert self.main_task is not None
            self.main_task.cancel()


@main.command()
@click.argument("flows", nargs=-1, required=True, type=FLOW_PATH)
@click.option("-q", "--quiet", is_flag=True, help="Print errors only, no warnings or summary.")
@ALLOW_CODE
def validate(flows: tuple[Path, ...], quiet: bool, allow_code: bool) -> None:
    """Check FLOW files and their tests: every problem as PATH:LINE:COL: node 'ID': message.

    A flow's tests (inline `tests:` and FLOW.test.yaml beside it) are checked against it, as
    `flowengine test` would before running them; a test file given as FLOW is checked alone.
    Exit 0 when clean (warnings allowed), 1 when any file has errors.
    """
    registry = _registry()
    failed = False
    for path in flows:
        if is_test_file(path):
            problems, cases = flow_test_problems(path, registry, allow_code=allow_code)
            nodes = ""
        else:
            checked = load_flow(path, registry, allow_code=allow_code)
            tests, cases = flow_test_problems(path, registry, allow_code=allow_code)
            problems = list(dict.fromkeys([*checked.problems, *tests]))  # the flow's, once
            nodes = f", {len(checked.flow.nodes)} nodes"
        for problem in problems:
            if problem.is_error or not quiet:
                click.echo(str(problem), err=True)
        errors = sum(p.is_error for p in problems)
        failed |= errors > 0
        if not quiet:
            verdict = "ok" if not errors else f"{errors} error(s)"
            tested = f", {cases} test case(s)" if cases else ""
            click.echo(f"{path}: {verdict}, {len(problems) - errors} warning(s){nodes}{tested}")
    sys.exit(EXIT_INVALID if failed else 0)


@main.command()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Every type with kind, ports, category and config JSON Schema.",
)
@click.option("--markdown", is_flag=True, help="The reference of docs/nodes.md.")
def nodes(as_json: bool, markdown: bool) -> None:
    """List the installed node types (built-ins and plugins)."""
    registry = _registry()
    if as_json:
        click.echo(json.dumps([registry.describe(n) for n in registry.names()], indent=2))
        return
    if markdown:
        click.echo(render(registry), nl=False)
        return
    table = Table(box=None)
    for col in ("type", "kind", "category", "inputs", "outputs", "description"):
        table.add_column(col)
    for name in registry.names():
        info = registry.describe(name)
        summary = info["description"].splitlines()[0] if info["description"] else ""
        if not info["available"]:
            summary += " [needs " + ", ".join(r["extra"] for r in info["requires"]) + "]"
        table.add_row(
            name,
            info["kind"],
            info["category"],
            ",".join(info["inputs"]) or "-",
            ",".join(info["outputs"]),
            summary,
        )
    Console(width=160).print(table)
    for name, reason in registry.broken.items():
        click.echo(f"warning: node type '{name}' failed to load: {reason}", err=True)


@main.command("export")
@click.argument("flow", type=FLOW_PATH)
@click.option(
    "-f", "--format", "fmt", type=click.Choice(FORMATS), default="yaml", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of stdout.",
)
def export_cmd(flow: Path, fmt: str, output: Path | None) -> None:
    """Export FLOW as YAML or JSON (secrets masked, ${VAR} kept) or draw it as Mermaid or DOT."""
    checked = load_flow(flow, _registry())
    _report(checked, quiet=True)  # an invalid flow still exports (to draw it), but says so
    if checked.flow.doc is None:
        sys.exit(EXIT_INVALID)
    text = export(checked.flow, _registry(), fmt)
    if output:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise click.FileError(str(output), exc.strerror or str(exc)) from None
    else:
        click.echo(text, nl=False)


def _add_commands(group: click.Group) -> None:
    """Add the subcommands that node families and the editor register under ``flowengine.commands``.

    The core names none of them: a family's command ships with the family (``train`` with the
    analytics nodes, ``simulate`` with the plant model, ``edit`` with the editor). A command that fails to
    load is left out with a warning on use, never a traceback.
    """
    for ep in entry_points(group=COMMANDS):
        if ep.name in group.commands:
            continue
        try:
            command = ep.load()
        except Exception as exc:  # a broken plugin must not take the CLI down
            group.add_command(_broken(ep.name, f"{type(exc).__name__}: {exc}"))
            continue
        if isinstance(command, click.Command):
            group.add_command(command, ep.name)


def _broken(name: str, reason: str) -> click.Command:
    def fail() -> None:
        raise click.ClickException(f"command '{name}' failed to load: {reason}")

    return click.Command(name, callback=fail, help=f"(failed to load: {reason})")


main.add_command(browse)
main.add_command(flow_tests, "test")
main.add_command(secrets_cmd, "secrets")
_add_commands(main)


if __name__ == "__main__":
    main()
