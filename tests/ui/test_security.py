"""What editor access may do (docs/editor-security.md): only --allow-code admits code (a flow's
own ``settings.allow_code`` does not, in the editor), and nodes write only inside the output
root and never a flow file (issue 11, item 4)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from nicegui.testing import User

from flowengine.paths import WritePolicy
from flowengine.problems import FlowError
from flowengine.registry import default_registry
from flowengine.runtime import Runtime
from flowengine.ui.app import Editor, EditorConfig
from flowengine.ui.reading import OUTPUT_ROOT_ENV
from flowengine.validate import NO_FILE_CODE_ENV, load_flow
from tests.helpers.cli import flowengine
from tests.helpers.uiuser import editing, run, storage_in_tmp  # noqa: F401  (autouse fixture)


def code_flow(marker: Path) -> str:
    """A flow that allows code itself and whose Python leaves ``marker`` when it runs."""
    return f"""version: 1
name: sneaky
settings: {{allow_code: true}}
nodes:
  tick: {{type: inject, rows: [{{value: 1}}], wires: [py]}}
  py:
    type: python
    code: |
      open({str(marker)!r}, "w").write("ran")
      def process(df):
          return df
"""


def writer_flow(target: str) -> str:
    """A flow whose file node writes ``target`` (relative to the flow): the attack writes a
    flow file that allows code into the editor's folder."""
    return f"""version: 1
name: writer
nodes:
  tick:
    type: inject
    rows: [{{line: "settings: {{allow_code: true}}"}}]
    wires: [dump]
  dump: {{type: file, path: {target}, format: csv}}
"""


@pytest.fixture(autouse=True)
def no_output_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OUTPUT_ROOT_ENV, raising=False)


async def until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` (flows start in the background, in a process of their own)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def deploy(user: User) -> None:
    user.find(marker="deploy").click()
    await user.should_see("Not deployed")


def test_a_flows_own_allow_code_does_not_run_python_in_the_editor(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    flow = tmp_path / "sneaky.yaml"
    flow.write_text(code_flow(marker))
    editor = Editor(EditorConfig(tmp_path))  # runs what it opens, without --allow-code

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/edit/sneaky.yaml")
            await user.should_see("the editor was started without --allow-code")
            await until(lambda: editor.host_error, "the refused start")
            await deploy(user)
            assert editor.host is None
            assert not marker.exists()

    run(scenario)


def test_allow_code_given_to_the_editor_runs_the_python(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    flow = tmp_path / "sneaky.yaml"
    flow.write_text(code_flow(marker))
    editor = Editor(EditorConfig(flow, allow_code=True))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await user.should_see(marker="canvas")
            await until(marker.exists, "the python node's code")  # in the flow's process

    run(scenario)


def test_flowengine_run_still_honours_the_flows_own_allow_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    flow = tmp_path / "sneaky.yaml"
    flow.write_text(code_flow(marker))
    assert load_flow(flow, default_registry()).ok
    done = flowengine("run", str(flow), "--for", "0.5", "--no-live", env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "ran"


def test_a_file_node_writing_a_flow_file_is_refused_naming_the_node(tmp_path: Path) -> None:
    (tmp_path / "writer.yaml").write_text(writer_flow("evil.yaml"))
    editor = Editor(EditorConfig(tmp_path))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/edit/writer.yaml")
            await user.should_see("node 'dump' may not write field 'path'")
            await user.should_see("would be a flow, flow test or .env file")
            await until(lambda: editor.host_error, "the refused start")
            await deploy(user)
            assert editor.host is None
            assert not (tmp_path / "evil.yaml").exists()

    run(scenario)


@pytest.mark.parametrize(
    "target",
    ["../elsewhere.csv", "out/../escape.csv", "out/x.test.yaml", "out/.env", "/tmp/abs.csv"],
)
def test_the_write_policy_refuses_paths_outside_the_root_and_flow_files(
    tmp_path: Path, target: str
) -> None:
    assert WritePolicy().refusal(target, tmp_path / "flows") is not None


def test_the_write_policy_admits_the_out_folders_and_a_given_root(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    policy = WritePolicy()
    assert policy.refusal("out/a.csv", flows) is None  # beside the flow file
    assert policy.refusal("../out/a.jsonl.gz", flows) is None  # beside its folder
    root = WritePolicy(tmp_path / "data")
    assert root.refusal("../data/a.csv", flows) is None
    assert root.refusal("out/a.csv", flows) is not None


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path)
    assert WritePolicy().refusal("out/link/escape.csv", tmp_path) is not None


def test_output_root_from_the_editor_applies_and_the_runtime_writes_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OUTPUT_ROOT_ENV, str(tmp_path / "data"))
    (tmp_path / "writer.yaml").write_text(writer_flow("data/rows.csv"))
    editor = Editor(EditorConfig(tmp_path / "writer.yaml"))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await user.should_see(marker="canvas")
            await until(rows.exists, "the rows written inside the root given")

    rows = tmp_path / "data" / "rows.csv"
    run(scenario)
    assert "settings: {allow_code: true}" in rows.read_text()


def test_the_runtime_applies_the_policy_it_is_given_with_the_flow(tmp_path: Path) -> None:
    flow = tmp_path / "writer.yaml"
    flow.write_text(writer_flow("evil.yaml"))
    checked = load_flow(flow, default_registry())  # checked without a policy: fine
    assert checked.ok
    checked.write_policy = WritePolicy()
    with pytest.raises(FlowError, match="would be a flow"):
        Runtime(checked)


def test_processes_the_editor_starts_inherit_the_refusal(tmp_path: Path) -> None:
    """`flowengine edit` sets FLOWENGINE_NO_FILE_CODE=1, so a test run it starts (`flowengine
    test` in a child process) refuses the flow's own allow_code too."""
    flow = tmp_path / "sneaky.yaml"
    flow.write_text(code_flow(tmp_path / "ran.txt"))
    env = {**os.environ, NO_FILE_CODE_ENV: "1"}
    refused = flowengine("validate", str(flow), env=env)
    assert refused.returncode == 1, refused.stderr
    assert "the editor was started without --allow-code" in refused.stdout + refused.stderr
    allowed = flowengine("validate", str(flow), "--allow-code", env=env)
    assert allowed.returncode == 0, allowed.stderr
