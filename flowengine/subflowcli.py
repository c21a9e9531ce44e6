"""``flowengine subflow docs FILE``: a subflow's reference, as ``flowengine nodes`` writes a
node type's (registered under ``flowengine.commands`` like the other subcommands)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from flowengine.subflow import docs, read_subflow

EXIT_INVALID = 1


@click.group()
def subflow() -> None:
    """Subflows: groups of nodes in their own file, used as one node (docs/subflows.md)."""


@subflow.command("docs")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def docs_cmd(path: Path) -> None:
    """Print the markdown reference of the subflow in PATH: its params, ports, description."""
    sub, problems = read_subflow(path)
    for problem in problems:
        click.echo(str(problem), err=True)
    if sub is None or any(p.is_error for p in problems):
        sys.exit(EXIT_INVALID)
    click.echo(docs(sub), nl=False)
