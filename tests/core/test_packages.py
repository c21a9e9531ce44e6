"""The installed layout: one copy of every class, commands and node types from entry points."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flowengine.node import Node, NodeConfig, Transform, option
from flowengine.registry import Registry
from flowengine.testing import run_flow
from tests.helpers.cli import REPO, flowengine


@pytest.mark.parametrize("folder", ["nodes", "ui"])
def test_the_bare_repo_folders_do_not_import(folder: str) -> None:
    """From the repository root `nodes` and `ui` are folders on sys.path: importing them would
    give a second copy of every class beside flowengine.nodes / flowengine.ui."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {folder}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"import it as 'flowengine.{folder}'" in done.stderr or (
        f"import them as 'flowengine.{folder}'" in done.stderr
    )


def test_a_node_names_its_config_once_as_the_type_argument() -> None:
    class GainConfig(NodeConfig):
        gain: float = option(3.0, description="Factor.")

    class Gain(Transform[GainConfig]):
        def process(self, batch):  # type: ignore[no-untyped-def]
            return batch.frame.assign(value=batch.frame["value"] * self.config.gain)

    class Plain(Transform):  # type: ignore[type-arg]  # no config at all
        def process(self, batch):  # type: ignore[no-untyped-def]
            return batch.frame

    assert Gain.Config is GainConfig and Plain.Config is NodeConfig
    assert Node.recent is None and Gain.recent is None  # only nodes that keep batches have one
    flow = {
        "src": {"type": "inject", "rows": [{"value": 2.0}], "wires": ["g"]},
        "g": {"type": "gain", "gain": 5, "wires": ["cap"]},
        "cap": {"type": "capture"},
    }
    result = run_flow(flow, types={"gain": Gain})
    assert result.frame("cap")["value"].tolist() == [10.0]
    registry = Registry()
    registry.register("gain", Gain)
    assert registry.describe("gain")["schema"]["properties"]["gain"]["default"] == 3.0


def test_plugin_commands_and_node_types_come_from_entry_points(cli_env: dict[str, str]) -> None:
    helped = flowengine("--help", env=cli_env)
    assert helped.returncode == 0 and "hello" in helped.stdout and "train" in helped.stdout
    said = flowengine("hello", "plant", env=cli_env)
    assert said.returncode == 0 and said.stdout.strip() == "hello plant from the test pack"
    broken = flowengine("brokencmd", env=cli_env)
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert "command 'brokencmd' failed to load" in broken.stderr
    listed = flowengine("nodes", "--json", env=cli_env)
    assert "scale" in {t["type"] for t in json.loads(listed.stdout)}


def test_the_layer_contract_names_every_core_module() -> None:
    """import-linter checks only the modules a contract lists: a new core module must be
    in the "core never imports nodes or ui" contract, or that rule would not see it."""
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    core = next(c for c in contracts["contracts"] if c["name"].startswith("the core never"))
    modules = {f"flowengine.{p.stem}" for p in (REPO / "flowengine").glob("*.py")}
    modules |= {
        f"flowengine.connectors.{p.stem}" for p in (REPO / "flowengine/connectors").glob("*.py")
    }
    modules -= {"flowengine.__init__", "flowengine.connectors.__init__"}
    # the seed facade loads node families by name on first use (documented in its docstring)
    modules -= {"flowengine.connectors"}
    assert modules - set(core["source_modules"]) == set()


def test_the_independence_contract_names_every_node_family() -> None:
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    independent = next(c for c in contracts["contracts"] if c["type"] == "independence")
    families = {
        f"flowengine.nodes.{d.name}"
        for d in (REPO / "nodes").iterdir()
        if (d / "__init__.py").exists()
    }
    assert families == set(independent["modules"])
