"""Subflows: instances expand into namespaced nodes with their own state; problems inside a
subflow are located in its file; cycles and installed (entry point) subflows."""

from __future__ import annotations

import asyncio
import os
import shutil
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from flowengine import subflow
from flowengine.node import NodeConfig, Source, Transform, option
from flowengine.registry import Registry
from flowengine.runtime import Runtime
from flowengine.subflowcli import subflow as subflow_cli
from flowengine.testing import check_text, run_flow
from flowengine.types import Batch, Result
from tests.helpers.cli import REPO, flowengine
from tests.helpers.peers import until


class TotalConfig(NodeConfig):
    scale: float = option(1.0, description="Multiplier of `value`.")


class Total(Transform[TotalConfig]):
    """A running total of `value` (times `scale`) across batches: state."""

    state_attrs = ("total",)

    async def start(self) -> None:
        self.total = 0.0

    def process(self, batch: Batch) -> Result:
        out = []
        for value in batch.frame["value"]:
            self.total += float(value) * self.config.scale
            out.append(self.total)
        return batch.frame.assign(total=out)


class TagConfig(NodeConfig):
    label: str = option(description="Written to a `label` column.")


class Tag(Transform[TagConfig]):
    """Adds a `label` column."""

    def process(self, batch: Batch) -> Result:
        return batch.frame.assign(label=self.config.label)


class Ticks(Source[NodeConfig]):
    """Endless rows `value: 1`, at most one batch per millisecond."""

    async def read(self) -> Result:
        await asyncio.sleep(0.001)
        return pd.DataFrame({"value": [1.0]})


TYPES: dict[str, Any] = {"total": Total, "tag": Tag, "ticks": Ticks}

SMOOTH = """\
version: 1
subflow:
  name: smooth
  version: 1.2.0
  description: A running total of value, scaled, with a label.
  params:
    scale: {type: float, default: 1.0, description: Multiplier.}
    label: {type: str, description: Label of every row.}
  inputs: {in: total}
  outputs: {out: tag}
nodes:
  total: {type: total, scale: "${param.scale}", wires: [tag]}
  tag: {type: tag, label: "sensor ${param.label}"}
"""

FLOW = """\
version: 1
nodes:
  src: {type: frames, frames: [[{value: 1}], [{value: 2}], [{value: 3}]], wires: [a, b]}
  a: {type: subflow, path: smooth.subflow.yaml, label: A, wires: [cap_a]}
  b: {type: subflow, path: smooth.subflow.yaml, label: B, scale: 10, wires: [cap_b]}
  cap_a: {type: capture}
  cap_b: {type: capture}
"""


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")


def errors(checked: Any) -> list[str]:
    return [str(p) for p in checked.errors]


def test_instances_expand_and_keep_their_own_state(tmp_path: Path) -> None:
    write(tmp_path, {"smooth.subflow.yaml": SMOOTH})
    result = run_flow(FLOW, types=TYPES, path=tmp_path / "flow.yaml")
    assert result.report.drained
    a, b = result.frame("cap_a"), result.frame("cap_b")
    assert a["total"].tolist() == [1.0, 3.0, 6.0]
    assert b["total"].tolist() == [10.0, 30.0, 60.0]
    assert set(a["label"]) == {"sensor A"} and set(b["label"]) == {"sensor B"}
    assert result.node("a/total") is not result.node("b/total")
    assert result.node("a/total").snapshot() == {"total": 6.0}
    graph = result.runtime.checked.graph
    assert set(graph.successors("src")) == {"a/total", "b/total"}
    assert set(graph.successors("a/tag")) == {"cap_a"}


def test_params_are_checked_per_instance_and_named(tmp_path: Path) -> None:
    write(tmp_path, {"smooth.subflow.yaml": SMOOTH})
    bad = FLOW.replace("scale: 10", "scale: lots").replace("label: A, ", "")
    checked = check_text(bad, types=TYPES, path=tmp_path / "flow.yaml")
    found = errors(checked)
    flow = tmp_path / "flow.yaml"
    assert any(
        e.startswith(f"{flow}:5:59: node 'b': field 'scale'") and "number" in e for e in found
    ), found
    assert any(
        e.startswith(f"{flow}:4:3: node 'a': missing required field 'label'") for e in found
    ), found
    assert len(found) == 2, found  # nothing piled on top (no wire or reach errors)


def test_an_error_inside_the_subflow_is_located_in_its_file(tmp_path: Path) -> None:
    broken = SMOOTH.replace('scale: "${param.scale}"', "scael: 2")
    write(tmp_path, {"smooth.subflow.yaml": broken})
    checked = check_text(FLOW, types=TYPES, path=tmp_path / "flow.yaml")
    found = errors(checked)
    sub = tmp_path / "smooth.subflow.yaml"
    flow = tmp_path / "flow.yaml"
    assert f"{sub}:12:24: node 'a/total': unknown field 'scael' (did you mean 'scale'?)" in (
        " ".join(found)
    ), found
    assert any(f"(in subflow instance 'a' ({flow}:4:3))" in e for e in found), found
    assert any(e.startswith(f"{sub}:12:24: node 'b/total'") for e in found), found


def test_unknown_param_and_ports_are_reported_in_the_subflow_file(tmp_path: Path) -> None:
    broken = SMOOTH.replace("${param.label}", "${param.lable}").replace("out: tag", "out: tga")
    write(tmp_path, {"smooth.subflow.yaml": broken})
    checked = check_text(FLOW, types=TYPES, path=tmp_path / "flow.yaml")
    found = " | ".join(errors(checked))
    sub = tmp_path / "smooth.subflow.yaml"
    assert f"{sub}:13:20: node 'a/tag': field 'label': unknown param 'lable'" in found
    assert f"{sub}:10:18: node 'a': subflow output 'out' names missing node 'tga'" in found


def test_nested_subflows_and_their_problems(tmp_path: Path) -> None:
    outer = """\
    version: 1
    subflow:
      name: twice
      params:
        label: {type: str, default: x}
      inputs: {in: first}
      outputs: {out: second}
    nodes:
      first: {type: subflow, path: smooth.subflow.yaml, label: "${param.label}1", wires: [second]}
      second: {type: subflow, path: smooth.subflow.yaml, label: "${param.label}2", scale: 2}
    """
    flow = textwrap.dedent(
        """\
        version: 1
        nodes:
          src: {type: frames, frames: [[{value: 1}], [{value: 2}]], wires: [t]}
          t: {type: subflow, path: sub/twice.subflow.yaml, label: T, wires: [cap]}
          cap: {type: capture}
        """
    )
    write(tmp_path, {"sub/smooth.subflow.yaml": SMOOTH, "sub/twice.subflow.yaml": outer})
    result = run_flow(flow, types=TYPES, path=tmp_path / "flow.yaml")
    frame = result.frame("cap")
    assert frame["total"].tolist() == [2.0, 6.0]  # the second instance: value times 2
    assert set(frame["label"]) == {"sensor T2"}
    graph = result.runtime.checked.graph
    assert set(graph.successors("src")) == {"t/first/total"}
    assert set(graph.successors("t/first/tag")) == {"t/second/total"}
    assert set(graph.successors("t/second/tag")) == {"cap"}

    write(tmp_path, {"sub/twice.subflow.yaml": outer.replace("scale: 2", "scale: two")})
    checked = check_text(flow, types=TYPES, path=tmp_path / "flow.yaml")
    where = tmp_path / "sub" / "twice.subflow.yaml"
    found = errors(checked)
    assert any(
        e.startswith(f"{where}:10:80: node 't/second': field 'scale'")
        and f"(in subflow instance 't' ({tmp_path / 'flow.yaml'}:4:3))" in e
        for e in found
    ), found


def test_a_subflow_that_includes_itself_is_a_cycle(tmp_path: Path) -> None:
    ping = """\
    version: 1
    subflow: {name: ping, inputs: {in: p}, outputs: {out: p}}
    nodes:
      p: {type: subflow, path: pong.subflow.yaml}
    """
    write(
        tmp_path,
        {
            "ping.subflow.yaml": ping,
            "pong.subflow.yaml": ping.replace("pong", "ping").replace("name: ping", "name: pong"),
        },
    )
    flow = """\
    version: 1
    nodes:
      src: {type: frames, frames: [[{value: 1}]], wires: [x]}
      x: {type: subflow, path: ping.subflow.yaml, wires: [cap]}
      cap: {type: capture}
    """
    checked = check_text(textwrap.dedent(flow), types=TYPES, path=tmp_path / "flow.yaml")
    found = errors(checked)
    cycle = "subflow cycle: ping.subflow.yaml -> pong.subflow.yaml -> ping.subflow.yaml"
    assert any(e.startswith(f"{tmp_path / 'pong.subflow.yaml'}:4:") and cycle in e for e in found)
    assert any("node 'x/p/p'" in e for e in found), found


def test_an_installed_subflow_by_package_and_version(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path, {"sfpkg/__init__.py": "", "sfpkg/smooth.subflow.yaml": SMOOTH})
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [EntryPoint(name="smooth", value="sfpkg", group=subflow.GROUP)]
    monkeypatch.setattr(
        subflow, "entry_points", lambda group: eps if group == subflow.GROUP else []
    )
    flow = FLOW.replace("path: smooth.subflow.yaml", "package: smooth@1.2")
    result = run_flow(flow, types=TYPES, path=tmp_path / "flows" / "flow.yaml")
    assert result.frame("cap_b")["total"].tolist() == [10.0, 30.0, 60.0]

    wrong = FLOW.replace("path: smooth.subflow.yaml", "package: smooth@2")
    found = errors(check_text(wrong, types=TYPES, path=tmp_path / "flow.yaml"))
    assert any("no installed subflow 'smooth' has version 2" in e for e in found), found
    missing = FLOW.replace("path: smooth.subflow.yaml", "package: smoth@1")
    found = errors(check_text(missing, types=TYPES, path=tmp_path / "flow.yaml"))
    assert any("no installed subflow 'smoth' (did you mean 'smooth'?)" in e for e in found)


def test_the_params_are_a_node_spec_for_docs_and_forms(tmp_path: Path) -> None:
    write(tmp_path, {"smooth.subflow.yaml": SMOOTH})
    sub, problems = subflow.read_subflow(tmp_path / "smooth.subflow.yaml")
    assert sub is not None and problems == []
    registry = Registry()
    registry.register("smooth", sub.node_type)
    info = registry.describe("smooth")
    assert info["description"] == "A running total of value, scaled, with a label."
    assert info["inputs"] == ["in"] and info["outputs"] == ["out", "error"]
    props = info["schema"]["properties"]
    assert props["scale"]["type"] == "number" and props["scale"]["default"] == 1.0
    assert info["schema"]["required"] == ["label"]
    assert "| `label` | string | *required* | Label of every row. |" in subflow.docs(sub)


def test_deploy_restarts_only_the_changed_instance(tmp_path: Path) -> None:
    write(tmp_path, {"smooth.subflow.yaml": SMOOTH})
    flow = """\
    version: 1
    nodes:
      src: {type: ticks, wires: [a, b]}
      a: {type: subflow, path: smooth.subflow.yaml, label: A, wires: [cap_a]}
      b: {type: subflow, path: smooth.subflow.yaml, label: B, scale: SCALE, wires: [cap_b]}
      cap_a: {type: capture}
      cap_b: {type: capture}
    """

    def version(scale: int) -> Any:
        text = textwrap.dedent(flow).replace("SCALE", str(scale))
        checked = check_text(text, types=TYPES, path=tmp_path / "flow.yaml")
        assert checked.ok, errors(checked)
        return checked

    async def main() -> None:
        runtime = Runtime(version(10))
        task = asyncio.create_task(runtime.run())
        assert await runtime.wait_started()
        try:
            kept = runtime.node("a/total")
            cap_b = runtime.node("cap_b")
            await until(lambda: len(getattr(cap_b, "batches", [])) >= 5, task, what="rows")
            report = await runtime.apply(version(20))
            assert report.restarted == ["b/total"]
            assert report.added == report.removed == []
            assert runtime.node("a/total") is kept
        finally:
            runtime.stop()
            await asyncio.wait_for(task, 30)

    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.mark.parametrize("bad", ["", "path: a.subflow.yaml\n      package: x"])
def test_an_instance_needs_one_source(tmp_path: Path, bad: str) -> None:
    flow = f"""\
    version: 1
    nodes:
      src: {{type: frames, frames: [[{{value: 1}}]], wires: [x]}}
      x:
        type: subflow
      {bad}
    """
    found = errors(check_text(textwrap.dedent(flow), types=TYPES, path=tmp_path / "f.yaml"))
    assert any("needs 'path' (a subflow file) or 'package'" in e for e in found), found


def test_a_journaled_source_and_a_buffered_sink_inside_a_subflow(tmp_path: Path) -> None:
    """Their files are named after the node id, which holds a `/` here (a subfolder)."""
    source = """\
    version: 1
    subflow: {name: feed, outputs: {out: tick}}
    nodes:
      tick: {type: ticks, wires: [held]}
      held: {type: capture, buffer: true}
    """
    write(tmp_path, {"feed.subflow.yaml": source})
    flow = """\
    version: 1
    settings: {checkpoint: 1s}
    nodes:
      f: {type: subflow, path: feed.subflow.yaml}
    """
    text = textwrap.dedent(flow)
    result = run_flow(text, types=TYPES, path=tmp_path / "flow.yaml", duration=0.3)
    assert result.report.errors == 0, result.runtime.snapshot()
    assert result.batches("f/held")
    names = {p.parent.name + "/" + p.name for p in tmp_path.rglob("*.db")}
    assert {"journal-f/tick.db", "buffer-f/held.db"} <= names, names


def test_validate_cli_points_into_the_subflow_file(tmp_path: Path) -> None:
    """The shipped example, broken inside its subflow: `flowengine validate` names the subflow
    file's line:col and the instance (as a user runs it, relative paths kept)."""
    shutil.copytree(REPO / "flows" / "subflows", tmp_path / "subflows")
    shutil.copy(REPO / "flows" / "line-smoothing.yaml", tmp_path)
    sub = tmp_path / "subflows" / "smooth.subflow.yaml"
    sub.write_text(sub.read_text().replace("[mean, max]", "[mean, maxx]"))
    env = {**os.environ, "NO_COLOR": "1"}
    done = flowengine("validate", "line-smoothing.yaml", env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if "maxx" in ln or "'aggregations.1'" in ln]
    assert [ln.split(": Input")[0] for ln in lines] == [
        "subflows/smooth.subflow.yaml:24:5: node 'fast/windows': field 'aggregations.1'",
        "subflows/smooth.subflow.yaml:24:5: node 'slow/windows': field 'aggregations.1'",
    ], done.stderr
    assert "(in subflow instance 'fast' (line-smoothing.yaml:20:3))" in lines[0]


def test_subflow_docs_command() -> None:
    runner = CliRunner()
    done = runner.invoke(subflow_cli, ["docs", str(REPO / "flows/subflows/smooth.subflow.yaml")])
    assert done.exit_code == 0, done.output
    assert done.output.startswith("## `smooth` 1.0.0 (transform, subflow)")
    assert "| `limit` | number | *required* | Readings above this are dropped. |" in done.output
    bad = runner.invoke(subflow_cli, ["docs", str(REPO / "flows/line-smoothing.yaml")])
    assert bad.exit_code == 1 and "needs a 'subflow:' map" in bad.output
