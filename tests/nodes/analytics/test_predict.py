"""Predict: scores feature rows, names missing columns, reloads a changed model without a gap."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flowengine.node import Done, NodeConfig, Source, option
from flowengine.nodes.analytics import ml
from flowengine.runtime import Runtime
from flowengine.testing import check_text, run_flow
from flowengine.types import Result
from tests.helpers.ml import history
from tests.helpers.peers import until

ROWS = 40


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two binary models on different data (so their versions differ) and a multi-class one."""
    folder = tmp_path_factory.mktemp("models")
    rows = history(seed=11, hours=0.5)
    first = ml.train(rows, "defect", horizon=20.0, folds=2, name="line3", kind="logistic")
    other = history(seed=12, hours=0.5)
    second = ml.train(other, "defect", horizon=20.0, folds=2, name="line3", kind="logistic")
    kinds = rows.assign(kind=np.where(rows["defect"] > 0, "cold_spot", "normal"))
    kinds.loc[kinds.index[::7], "kind"] = "gauge"  # a third class, for the class column
    multi = ml.train(kinds.drop(columns="defect"), "kind", folds=2, kind="logistic", name="m")
    return {
        "first": ml.save(first, folder / "first.joblib")[0],
        "second": ml.save(second, folder / "second.joblib")[0],
        "multi": ml.save(multi, folder / "multi.joblib")[0],
    }


def records(frame: pd.DataFrame) -> list[list[dict[str, Any]]]:
    plain = frame.assign(timestamp=frame["timestamp"].astype(str))
    return [plain.iloc[i : i + 10].to_dict("records") for i in range(0, len(plain), 10)]


def flow(model: Path, batches: list[list[dict[str, Any]]], **extra: Any) -> dict[str, Any]:
    return {
        "src": {"type": "frames", "frames": batches, "wires": ["p"]},
        "p": {
            "type": "predict",
            "model": str(model),
            "wires": {"out": ["cap"], "error": ["bad"]},
            **extra,
        },
        "cap": {"type": "capture"},
        "bad": {"type": "capture"},
    }


def test_rows_get_probability_version_and_top_features(models: dict[str, Path]) -> None:
    rows = history(seed=5, hours=0.1).head(ROWS)
    out = run_flow(flow(models["first"], records(rows))).frame("cap")
    model = ml.load_model(models["first"])
    want = model.defect_probability(model.probabilities(model.matrix(rows)))
    assert np.allclose(out["defect_probability"], want)
    assert set(out["model_version"]) == {model.version} and model.version.startswith("line3@")
    tops = out["top_features"].str.split(", ")
    assert all(1 <= len(t) <= 3 and set(t) <= set(model.features) for t in tops)
    assert "furnace_temp_mean" in out.columns  # features pass through by default


def test_multi_class_model_adds_the_class(models: dict[str, Path]) -> None:
    rows = history(seed=5, hours=0.1).head(ROWS)
    out = run_flow(flow(models["multi"], records(rows), keep_features=False)).frame("cap")
    assert set(out["defect_class"]) <= {"normal", "cold_spot", "gauge"}
    assert out["defect_probability"].between(0, 1).all()
    assert "furnace_temp_mean" not in out.columns and "line" in out.columns


def test_missing_feature_columns_go_to_the_error_port_named(models: dict[str, Path]) -> None:
    rows = history(seed=5, hours=0.1).head(20)
    good, bad = records(rows), records(rows.drop(columns=["roll_force_std", "furnace_temp_max"]))
    result = run_flow(flow(models["first"], [good[0], bad[0], good[1]]))
    assert len(result.frame("cap")) == 20  # the flow went on past the bad batch
    [error] = result.batches("bad")
    assert "furnace_temp_max" in error.error and "roll_force_std" in error.error


def test_onnx_without_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    [problem] = check_text({"p": {"type": "predict", "model": "m.onnx"}}).errors
    assert "install 'flowengine[onnx]'" in problem.message


def test_bad_config_and_missing_file_are_validation_errors(tmp_path: Path) -> None:
    [problem] = check_text({"p": {"type": "predict", "model": "m.txt"}}).errors
    assert "must end in" in problem.message
    flow_file = tmp_path / "flow.yaml"
    [problem] = check_text({"p": {"type": "predict", "model": "m/x.joblib"}}, path=flow_file).errors
    assert problem.node == "p" and f"model file not found: {tmp_path}/m/x.joblib" in problem.message


class FeedConfig(NodeConfig):
    queue: str = option("feed", description="Key of the queue in QUEUES.")


QUEUES: dict[str, asyncio.Queue[pd.DataFrame | None]] = {}


class Feed(Source):
    """Emits what the test puts on its queue; None ends it."""

    Config = FeedConfig
    config: FeedConfig

    async def read(self) -> Result:
        frame = await QUEUES[self.config.queue].get()
        if frame is None:
            raise Done
        return frame


def test_changed_model_file_is_reloaded_without_dropping_batches(
    models: dict[str, Path], tmp_path: Path
) -> None:
    live = tmp_path / "live.joblib"
    live.write_bytes(models["first"].read_bytes())
    ml.card_path(live).write_bytes(ml.card_path(models["first"]).read_bytes())
    rows = history(seed=5, hours=0.2)
    batches = [rows.iloc[i : i + 5] for i in range(0, len(rows), 5)]
    spec = flow(live, [], check_every="10ms")
    spec["src"] = {"type": "feed", "wires": ["p"]}
    checked = check_text(spec, types={"feed": Feed})

    async def scenario() -> tuple[list[str], int]:
        QUEUES["feed"] = queue = asyncio.Queue()
        runtime = Runtime(checked)
        task = asyncio.create_task(runtime.run())
        cap = lambda: runtime.node("cap").batches  # noqa: E731
        sent = 0
        for b in batches[:5]:
            await queue.put(b)
            sent += 1
        await until(lambda: len(cap()) == 5, task, what="first batches")
        tmp = tmp_path / ".swap.joblib"
        tmp.write_bytes(models["second"].read_bytes())
        tmp.replace(live)  # atomic, as `flowengine train` writes it
        while not any(
            b.frame["model_version"].iloc[0] != cap()[0].frame["model_version"].iloc[0]
            for b in cap()
        ):
            assert sent < len(batches), "model never reloaded"
            await queue.put(batches[sent])
            sent += 1
            await until(lambda n=sent: len(cap()) == n, task, what="batch through")
        await queue.put(None)
        await asyncio.wait_for(task, 30)
        versions = [b.frame["model_version"].iloc[0] for b in cap()]
        return versions, sum(len(b.frame) for b in cap()) - sum(len(b) for b in batches[:sent])

    versions, lost = asyncio.run(scenario())
    assert lost == 0
    assert len(set(versions)) == 2
    switch = versions.index(versions[-1])
    assert all(v == versions[0] for v in versions[:switch])  # old until the swap, new after
    assert all(v == versions[-1] for v in versions[switch:])
    assert versions[-1] == ml.load_model(models["second"]).version  # the same file bytes


def test_a_broken_new_file_keeps_the_old_model(models: dict[str, Path], tmp_path: Path) -> None:
    live = tmp_path / "live.joblib"
    live.write_bytes(models["first"].read_bytes())
    rows = history(seed=5, hours=0.05)
    spec = flow(live, [], check_every="10ms")
    spec["src"] = {"type": "feed", "queue": "broken", "wires": ["p"]}
    checked = check_text(spec, types={"feed": Feed})

    async def scenario() -> dict[str, Any]:
        QUEUES["broken"] = queue = asyncio.Queue()
        runtime = Runtime(checked)
        task = asyncio.create_task(runtime.run())
        await queue.put(rows.iloc[:5])
        await until(lambda: len(runtime.node("cap").batches) == 1, task, what="first batch")
        live.write_bytes(b"not a pickle")
        sent = 1
        while "reload failed" not in str(runtime.stats["p"].snapshot()["text"]):
            assert sent < 100, "reload failure never reported"
            await queue.put(rows.iloc[5 * sent : 5 * sent + 5])
            sent += 1
            await until(lambda n=sent: len(runtime.node("cap").batches) == n, task, what="batch")
        await queue.put(None)
        await asyncio.wait_for(task, 30)
        return runtime.stats["p"].snapshot()

    stats = asyncio.run(scenario())
    assert "reload failed, using live@" in str(stats["text"])
    assert "cannot load live.joblib" in str(stats["text"])
    assert stats["errors"] == 0
