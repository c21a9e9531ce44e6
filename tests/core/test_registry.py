"""Node types come from the `flowengine.nodes` entry point group, built-ins and plugins alike."""

from __future__ import annotations

import json
import textwrap

from flowengine.registry import Registry
from tests.helpers.cli import flowengine

BUILT_INS = {"simulate", "inject", "filter", "compute", "select", "rename", "debug", "file"}


def test_built_ins_register_through_entry_points():
    registry = Registry.from_entry_points()
    assert set(registry.names()) >= BUILT_INS
    info = registry.describe("filter")
    assert info["kind"] == "transform"
    assert info["outputs"] == ["out", "rejected", "error"]
    assert info["schema"]["required"] == ["query"]


def test_plugin_shows_in_nodes_and_runs_in_a_flow(cli_env, tmp_path):
    listed = flowengine("nodes", "--json", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    types = {t["type"]: t for t in json.loads(listed.stdout)}
    assert BUILT_INS | {"tick", "triple", "slowfile"} <= set(types)
    assert types["tick"]["kind"] == "source" and types["tick"]["category"] == "plugin"
    assert types["tick"]["schema"]["properties"]["rows"]["default"] == 10
    table = flowengine("nodes", env=cli_env)
    assert "triple" in table.stdout
    assert "node type 'broken' failed to load" in table.stderr

    out = tmp_path / "rows.txt"
    flow = tmp_path / "plugin.yaml"
    flow.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            nodes:
              t: {{type: tick, count: 3, rows: 4, wires: [x3]}}
              x3: {{type: triple, wires: [f]}}
              f: {{type: filter, query: value > 4, wires: [s]}}
              s: {{type: slowfile, path: {out}, delay: 0}}
            """
        )
    )
    ran = flowengine("run", str(flow), "--no-live", env=cli_env)
    assert ran.returncode == 0, ran.stderr
    assert out.read_text().split() == [str(i) for i in range(12)]


def test_broken_plugin_is_reported_by_validate(cli_env, tmp_path):
    flow = tmp_path / "broken.yaml"
    flow.write_text("version: 1\nnodes:\n  b: {type: broken}\n")
    result = flowengine("validate", str(flow), env=cli_env)
    assert result.returncode == 1
    assert (
        f"{flow}:3:7: node 'b': node type 'broken' failed to load: AttributeError" in result.stderr
    )


def test_secret_defaults_are_masked_in_the_listing():
    from flowengine.node import NodeConfig, Sink, option

    class TokenConfig(NodeConfig):
        token: str = option("default-token-123", description="API token.", secret=True)

    class Hook(Sink):
        Config = TokenConfig

    registry = Registry()
    registry.register("hook", Hook)
    prop = registry.describe("hook")["schema"]["properties"]["token"]
    assert prop["default"] == "******" and prop["secret"] is True
