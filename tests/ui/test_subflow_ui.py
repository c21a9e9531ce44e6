"""Subflows in the editor: "Make subflow" moves a selection into a subflow file and the flow runs
the same; the canvas's context-menu event opens the dialog; an instance's form shows its params."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from ruamel.yaml import YAML

from flowengine.testing import registry_with, run_flow
from flowengine.ui.app import Editor, EditorConfig
from flowengine.ui.model import EditorModel
from flowengine.ui.subflows import make_subflow
from tests.helpers.uiuser import editing, run, storage_in_tmp  # noqa: F401  (autouse fixture)
from tests.ui.test_app import canvas_op

FLOWS = Path(__file__).resolve().parents[2] / "flows"

MINI = """\
version: 1
nodes:
  src:
    type: frames
    frames:
      - [{timestamp: "2026-01-01T00:00:01Z", sensor: a, value: 1}, {timestamp: "2026-01-01T00:00:03Z", sensor: a, value: 500}]
      - [{timestamp: "2026-01-01T00:00:12Z", sensor: a, value: 3}, {timestamp: "2026-01-01T00:00:14Z", sensor: b, value: 4}]
    wires: [keep]
  keep: {type: filter, query: "value < 100", wires: [avg, raw]}
  avg: {type: window, size: 10s, aggregations: [mean, count], wires: [means]}
  raw: {type: capture}
  means: {type: capture}
layout:
  src: {x: 80, y: 80}
  keep: {x: 300, y: 80}
  avg: {x: 520, y: 80}
  raw: {x: 520, y: 200}
  means: {x: 740, y: 80}
"""


def outputs(text: str, path: Path) -> dict[str, pd.DataFrame]:
    result = run_flow(text, path=path)
    assert result.report.drained and result.report.errors == 0
    return {n: result.frame(n) for n in ("raw", "means")}


def test_make_subflow_moves_the_selection_and_the_flow_runs_the_same(tmp_path: Path) -> None:
    flow = tmp_path / "mini.yaml"
    flow.write_text(MINI)
    model = EditorModel.open(flow, registry_with())
    before = outputs(model.text, flow)
    assert len(before["raw"]) == 3 and len(before["means"]) == 3

    inst = make_subflow(model, ["keep", "avg"], "subflows/smooth.subflow.yaml", "smooth")

    assert inst == "smooth1" and set(model.nodes) == {"src", "smooth1", "raw", "means"}
    node = model.nodes[inst]
    assert node["type"] == "subflow" and node["path"] == "subflows/smooth.subflow.yaml"
    assert model.position(inst) == (410, 80)  # where the selection was
    assert [str(t) for t in model.nodes["src"]["wires"]] == ["smooth1"]
    file = YAML(typ="safe").load((tmp_path / "subflows" / "smooth.subflow.yaml").read_text())
    assert file["subflow"]["inputs"] == {"in": ["keep"]}
    assert file["subflow"]["outputs"] == {"out": ["keep"], "avg": ["avg"]}
    assert file["nodes"]["keep"]["wires"] == ["avg"]  # only the wires inside
    assert "wires" not in file["nodes"]["avg"]
    assert dict(node["wires"]) == {"out": ["raw"], "avg": ["means"]}
    assert model.problems() == []

    after = outputs(model.text, flow)
    for name in ("raw", "means"):
        pd.testing.assert_frame_equal(after[name], before[name])
    # an edit of the subflow file is what the next check (a deploy) sees, the flow unchanged
    sub = tmp_path / "subflows" / "smooth.subflow.yaml"
    assert model.checked().nodes["smooth1/keep"].config.query == "value < 100"
    sub.write_text(sub.read_text().replace("value < 100", "value < 2"))
    os.utime(sub, ns=(1, 1))  # another version, however coarse the file system's clock
    assert model.checked().nodes["smooth1/keep"].config.query == "value < 2"
    assert model.undo() and "keep" in model.nodes and inst not in model.nodes


def test_make_subflow_refuses_an_existing_file_and_an_empty_selection(tmp_path: Path) -> None:
    flow = tmp_path / "mini.yaml"
    flow.write_text(MINI)
    (tmp_path / "taken.subflow.yaml").write_text("x: 1\n")
    model = EditorModel.open(flow, registry_with())
    with pytest.raises(FileExistsError):
        make_subflow(model, ["keep"], "taken.subflow.yaml", "taken")
    with pytest.raises(ValueError, match="select the nodes"):
        make_subflow(model, ["nope"], "a.subflow.yaml", "a")
    assert not model.can_undo  # nothing changed


def test_context_menu_make_subflow_and_the_instance_form(tmp_path: Path) -> None:
    flow = tmp_path / "mini.yaml"
    flow.write_text(MINI.replace("type: frames", "type: inject").replace("frames:", "rows:"))
    editor = Editor(EditorConfig(flow, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            canvas_op(user, op="make_subflow", nodes=["keep", "avg"])
            await user.should_see(marker="subflow-dialog")
            user.find(marker="subflow-name").clear().type("clean")
            user.find(marker="subflow-make").click()
            model = editor.model
            assert model is not None and "clean1" in model.nodes
            assert (tmp_path / "subflows" / "clean.subflow.yaml").is_file()
            # an instance of a subflow with params: its form is built from them
            model.set_field("clean1", "path", str(FLOWS / "subflows" / "smooth.subflow.yaml"))
            canvas_op(user, op="open", node="clean1")
            await user.should_see("Limit *")
            await user.should_see("Window length (a pandas Timedelta). (default: 10s)")
            await user.should_see("missing required field 'limit'")

    run(scenario)


def test_an_instance_form_masks_its_secret_params(tmp_path: Path) -> None:
    (tmp_path / "post.subflow.yaml").write_text(
        "version: 1\n"
        "subflow:\n"
        "  name: post\n"
        "  params: {token: {type: str, secret: true}, topic: {type: str, default: t}}\n"
        "  inputs: {in: show}\n"
        "nodes:\n"
        "  show: {type: debug}\n"
    )
    flow = tmp_path / "f.yaml"
    flow.write_text(
        "version: 1\nnodes:\n"
        "  p: {type: subflow, path: post.subflow.yaml, token: s3cret, topic: x}\n"
    )
    model = EditorModel.open(flow, registry_with())
    assert model.form_values("p")["token"] == "******"
    assert model.form_values("p")["topic"] == "x"
    assert not model.set_field("p", "token", "******")  # the mask never overwrites the secret
    views, _ = model.to_view()
    assert views[0]["inputs"] == ["in"] and views[0]["outputs"] == ["error"]
    assert views[0]["icon"] == "account_tree"
