"""FeatureEngineer and DefectPredictionEngine: the features and predict nodes for scripts.

They must give what the nodes give on the same input (one code path), load the demo's model
from an inference config YAML, and run the seed document's loop as written.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowengine.inference import DefectPredictionEngine, FeatureEngineer
from flowengine.node import Done, NodeConfig, Source, option
from flowengine.nodes.analytics.steelsim import LineConfig, SteelLine
from flowengine.testing import run_flow
from tests.helpers.cli import REPO

MODEL = REPO / "flows" / "models" / "line3.joblib"
START = pd.Timestamp("2026-01-01", tz="UTC")


def readings(seconds: int, per_batch: int = 10, seed: int = 163) -> list[pd.DataFrame]:
    """The simulated line 3 of flows/line3.yaml (10 Hz, an episode 16 s in) in batches of
    ``per_batch`` ticks, as a connector would deliver it."""
    line = SteelLine(LineConfig(seed=seed, rate=10, sensors=6, defect_interval=120))
    ticks = seconds * 10
    return [
        line.long_frame(i, min(per_batch, ticks - i), START, "sim", "3")
        for i in range(0, ticks, per_batch)
    ]


class LineSourceConfig(NodeConfig):
    seconds: int = option(description="Simulated seconds.")
    per_batch: int = option(10, description="Ticks per batch.")


class Line(Source[LineSourceConfig]):
    """Emits ``readings(seconds, per_batch)``: the same batches the test gives the scripts."""

    async def start(self) -> None:
        self.batches = readings(self.config.seconds, self.config.per_batch)

    async def read(self) -> pd.DataFrame:
        if not self.batches:
            raise Done
        return self.batches.pop(0)


def node_flow(seconds: int, per_batch: int, **predict: object) -> dict[str, object]:
    return {
        "src": {"type": "line", "seconds": seconds, "per_batch": per_batch, "wires": ["f"]},
        "f": {"type": "features", "labels": ["defect"], "wires": ["feats", "p"]},
        "p": {"type": "predict", "model": str(MODEL), "wires": ["cap"], **predict},
        "feats": {"type": "capture"},
        "cap": {"type": "capture"},
    }


def write_config(folder: Path, text: str) -> Path:
    path = folder / "configs" / "inference_config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


CONFIG = f"""
model: {MODEL}
threshold: 0.8
polling_interval: 1.0
features: {{size: 10s, step: 1s, aggregations: [mean, std, min, max, slope], labels: [defect],
           partial: false}}
predict: {{top_features: 3}}
"""


# ---- one code path: the scripts equal the nodes ---------------------------------------------
@pytest.mark.parametrize("per_batch", [7, 10])  # batch cuts that do and do not align with windows
def test_feature_engineer_and_engine_equal_the_nodes(per_batch: int) -> None:
    result = run_flow(node_flow(40, per_batch), types={"line": Line})
    node_features, node_scored = result.frame("feats"), result.frame("cap")
    assert len(node_features) >= 38  # a row per second once the first window has ended

    engineer = FeatureEngineer(labels=["defect"])
    parts = [engineer.transform(batch) for batch in readings(40, per_batch)]
    features = pd.concat([*parts, engineer.flush()], ignore_index=True)
    # the runtime stores text columns as pandas' str dtype; the values are what counts
    pd.testing.assert_frame_equal(features, node_features, check_dtype=False)

    engine = DefectPredictionEngine(MODEL)
    scored = engine.predict_frame(features)
    pd.testing.assert_frame_equal(scored, node_scored, check_dtype=False)
    riskiest = engine.predict(features)
    probability = node_scored["defect_probability"]
    top = node_scored[probability == probability.max()].iloc[-1]  # the newest among equals
    assert riskiest["defect_probability"] == pytest.approx(top["defect_probability"], abs=1e-12)
    assert riskiest["model_version"] == top["model_version"] == engine.version
    assert riskiest["top_features"] == top["top_features"]
    assert riskiest["timestamp"] == top["timestamp"] and riskiest["line"] == "3"
    assert riskiest["rows"] == len(features)
    assert not set(engine.features) & set(riskiest)  # inputs are not echoed back


def test_engine_keeps_the_predict_settings_of_its_config(tmp_path: Path) -> None:
    text = CONFIG.replace("{top_features: 3}", "{top_features: 0, keep_features: false}")
    engine = DefectPredictionEngine(write_config(tmp_path, text))
    result = run_flow(node_flow(20, 10, top_features=0, keep_features=False), types={"line": Line})
    features = result.frame("feats")
    pd.testing.assert_frame_equal(
        engine.predict_frame(features), result.frame("cap"), check_dtype=False
    )
    assert "top_features" not in engine.predict(features)


# ---- the seed's loop, as written --------------------------------------------------------------
def test_seed_loop_alerts_before_the_first_defect(tmp_path: Path) -> None:
    """The loop of the seed's "Integration with Inference System", one read per second of the
    line of flows/line3.yaml: no alert while nothing is wrong, one before the defect starts.
    As in the flow, only full windows are scored (`partial: false`): the first ones, with a
    second or two of readings, are noise to a model trained on full windows."""
    engine = DefectPredictionEngine(str(write_config(tmp_path, CONFIG)))
    feature_engineer = FeatureEngineer(str(tmp_path / "configs" / "inference_config.yaml"))
    threshold = engine.threshold
    alerts: list[dict[str, object]] = []
    first = None
    for sensor_data in readings(60):  # the connector's reads
        if sensor_data is not None:
            features = feature_engineer.transform(sensor_data)
            predictions = engine.predict(features)
            first = first or predictions
            if predictions["defect_probability"] > threshold:
                alerts.append(predictions)
    assert first is not None and math.isnan(first["defect_probability"]) and first["rows"] == 0
    assert alerts, "no alert during the first episode"
    assert alerts[0]["defect"] == 0  # the label the features carried: the defect is still ahead
    defect_at = next(r["timestamp"].iloc[0] for r in readings(60) if (r["defect"] > 0).any())
    assert START + pd.Timedelta(10, "s") < alerts[0]["timestamp"] < defect_at


def test_predict_takes_one_row_as_a_mapping() -> None:
    engine = DefectPredictionEngine(MODEL)
    engineer = engine.feature_engineer()
    features = pd.concat([engineer.transform(b) for b in readings(15)], ignore_index=True)
    row = features.iloc[-1][engine.features].to_dict()
    assert engine.predict(row)["defect_probability"] == pytest.approx(
        engine.predict(features.tail(1))["defect_probability"], abs=1e-12
    )
    with pytest.raises(KeyError, match="roll_force_std"):
        engine.predict(features.drop(columns=["roll_force_std"]))


def test_predict_scores_every_row_a_read_ended_and_returns_the_riskiest() -> None:
    """One read can end several windows (the loop drifted past the step, two lines in one
    frame): a window above the threshold followed by calmer ones must still make the seed's
    `predictions["defect_probability"] > threshold` alert, with that window's own keys."""
    engine = DefectPredictionEngine(MODEL)
    engineer = engine.feature_engineer()
    features = pd.concat([engineer.transform(b) for b in readings(60)], ignore_index=True)
    p = engine.predict_frame(features)["defect_probability"].to_numpy()
    i = next(i for i in range(len(p) - 2) if p[i] > engine.threshold > max(p[i + 1], p[i + 2]))
    one_read = features.iloc[[i, i + 1, i + 2]]
    out = engine.predict(one_read)
    assert out["defect_probability"] == pytest.approx(p[i], abs=1e-12)
    assert out["defect_probability"] > engine.threshold
    assert out["timestamp"] == features["timestamp"].iloc[i] and out["rows"] == 3
    # equal probabilities: the newest row wins, so a steady alert carries the latest time
    later = features["timestamp"].iloc[i] + pd.Timedelta(1, "h")
    twice = features.iloc[[i, i]].assign(timestamp=[features["timestamp"].iloc[i], later])
    assert engine.predict(twice)["timestamp"] == later


def test_nothing_read_yet_is_no_rows_not_an_error() -> None:
    engine = DefectPredictionEngine(MODEL)
    engineer = engine.feature_engineer()
    empty = engineer.transform(None)  # a connector's read with nothing new
    assert empty.empty and list(empty.columns[:2]) == ["timestamp", "line"]
    assert engine.predict(empty)["rows"] == 0
    engineer.transform(readings(3)[0])
    late = readings(3)[0].assign(timestamp=START - pd.Timedelta(1, "h"))
    assert engineer.transform(late).empty and engineer.late_rows == len(late)


# ---- the inference config ---------------------------------------------------------------------
def test_config_paths_aliases_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "line3.joblib").write_bytes(MODEL.read_bytes())
    (models / "line3.card.json").write_text((MODEL.parent / "line3.card.json").read_text())
    path = write_config(tmp_path, "model_path: ../models/line3.joblib\nthreshold: 0.5\n")
    engine = DefectPredictionEngine(path)  # relative to the config file, not the working dir
    assert engine.model_path == models / "line3.joblib" and engine.threshold == 0.5
    assert engine.version == DefectPredictionEngine(MODEL).version
    assert engine.config.features.size == "10s"  # the features node's defaults

    monkeypatch.setenv("LINE3_MODEL", str(MODEL))
    path = write_config(tmp_path, "model: ${LINE3_MODEL}\npolling_interval: 2\n")
    assert DefectPredictionEngine(path).polling_interval == 2.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: nowhere/m.joblib\n", "model file not found"),
        (f"model: {MODEL}\nthreshold: 1.5\n", "threshold"),
        (f"model: {MODEL}\nfeatures: {{size: 10s, step: 3s}}\n", "multiple of step"),
        (f"model: {MODEL}\nfeatures: {{window: 10s}}\n", "features.window"),
        (f"model: {MODEL}\npredict: {{model: {MODEL}}}\n", "write the model once"),
        (f"model: {MODEL}\nthresold: 0.5\n", "thresold"),
        ("model: ${NO_SUCH_VARIABLE_XYZ}\n", "NO_SUCH_VARIABLE_XYZ"),
        ("- model\n", "expected a mapping"),
        ("model: [\n", "not valid YAML"),
    ],
)
def test_bad_configs_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as raised:
        DefectPredictionEngine(path)
    assert str(path) in str(raised.value) or "model file not found" in str(raised.value)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"inference config not found: .*nope\.yaml"):
        DefectPredictionEngine(tmp_path / "nope.yaml")


# ---- the core facade --------------------------------------------------------------------------
def test_facade_loads_the_family_only_on_use() -> None:
    code = (
        "import json, sys\n"
        "import flowengine.inference as fi\n"
        "before = sorted(m for m in sys.modules if m.startswith('flowengine.nodes'))\n"
        "cls = fi.DefectPredictionEngine\n"
        "print(json.dumps([before, cls.__module__, 'FeatureEngineer' in dir(fi)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, module, listed = json.loads(out.stdout)
    assert before == [] and module == "flowengine.nodes.analytics.inference" and listed
    import flowengine.inference as fi

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        fi.Nope  # noqa: B018


def test_engine_scores_like_the_model_itself() -> None:
    """A guard on the shared score(): the probability is 1 - P(normal) of the estimator."""
    import joblib

    engine = DefectPredictionEngine(MODEL)
    features = pd.concat(
        [engine.feature_engineer().transform(b) for b in readings(20, per_batch=200)]
    )
    estimator = joblib.load(MODEL)
    want = (
        1.0
        - estimator.predict_proba(features[engine.features])[:, list(estimator.classes_).index(0.0)]
    )
    assert np.allclose(engine.predict_frame(features)["defect_probability"], want)
