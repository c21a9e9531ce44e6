"""The shipped flows: line3 raises its first alert within half a minute and archives to SQLite."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from ruamel.yaml import YAML

from flowengine.nodes.analytics import ml
from flowengine.testing import run_flow

FLOWS = Path(__file__).resolve().parents[2] / "flows"


def test_line3_demo_alerts_early_and_archives_features_and_predictions(tmp_path: Path) -> None:
    spec = YAML(typ="safe").load((FLOWS / "line3.yaml").read_text())
    # the same flow as shipped, but 4 simulated minutes as fast as possible
    spec["nodes"]["plc"].update(realtime=False, duration=240, start="2026-01-01T00:00:00Z")
    env = {"LINE3_ARCHIVE": str(tmp_path / "line3.db"), "LINE3_ALERTS": str(tmp_path / "a.jsonl")}
    run_flow(spec, path=FLOWS / "line3.yaml", env=env, timeout=120)
    alerts = pd.read_json(tmp_path / "a.jsonl", lines=True)
    raises = alerts[alerts["event"] == "raise"]
    first = pd.Timestamp(raises["timestamp"].iloc[0]) - pd.Timestamp("2026-01-01", tz="UTC")
    assert first <= pd.Timedelta("30s"), first
    assert set(alerts["severity"]) <= {"warning", "critical"}
    assert alerts["message"].str.startswith("Line 3: defect probability").all()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'line3.db'}")
    archive = pd.read_sql_table("predictions", engine)
    engine.dispose()
    archive["timestamp"] = pd.to_datetime(archive["timestamp"], utc=True)
    model = ml.load_model(FLOWS / "models" / "line3.joblib")
    # a row per second from the first full window (features `partial: false`): 10 s .. 240 s
    assert len(archive) == 231 and archive["timestamp"].iloc[0] == pd.Timestamp(
        "2026-01-01 00:00:10Z"
    )
    assert {"defect_probability", "model_version", "defect", *model.features} <= set(archive)
    episodes = archive[archive["defect"] == 1]
    assert len(episodes) and archive.loc[episodes.index, "defect_probability"].mean() > 0.5
    # every raise is followed by a real defect within a minute: no false alarms in the demo
    for ts in pd.to_datetime(raises["timestamp"], utc=True):
        window = archive[
            (archive["timestamp"] >= ts) & (archive["timestamp"] <= ts + pd.Timedelta("60s"))
        ]
        assert window["defect"].max() == 1, f"alert at {ts} without a defect within a minute"
