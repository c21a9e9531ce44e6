"""`flowengine train`: CSV and SQL history in, model + card out, clean errors."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from flowengine.cli import main
from flowengine.nodes.analytics import ml
from tests.helpers.ml import history


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hist") / "history.csv"
    history(11, 0.5).to_csv(path, index=False)
    return path


def test_trains_from_csv_and_writes_model_and_card(csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "models" / "line3.joblib"
    args = ["train", "--data", str(csv), "--label", "defect", "--horizon", "20s"]
    result = CliRunner().invoke(main, [*args, "--folds", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "ROC AUC (time-ordered CV):" in result.output and result.output.count("fold ") == 3
    card = json.loads((tmp_path / "models" / "line3.card.json").read_text())
    assert card["task"]["horizon_seconds"] == 20.0 and card["data"]["rows"] == len(history(11, 0.5))
    assert card["data"]["source"] == str(csv) and card["versions"]["scikit-learn"]
    assert "# Model card: line3" in (tmp_path / "models" / "line3.card.md").read_text()
    model = ml.load_model(out)
    assert model.features == card["features"] and "line" not in model.features


def test_the_card_says_how_to_make_the_model_again(csv: Path, tmp_path: Path) -> None:
    """The card keeps the command with every setting spelled out and the --note; running that
    command again gives the same model (flows/models/line3.card.md says how it was made)."""
    out = tmp_path / "first.joblib"
    args = ["train", "--data", str(csv), "--label", "defect", "--horizon", "20s", "--folds", "2"]
    note = "history: 30 min of seed 11"
    result = CliRunner().invoke(main, [*args, "--note", note, "--out", str(out)])
    assert result.exit_code == 0, result.output
    card = json.loads(ml.card_path(out).read_text())
    command = card["training"]["command"]
    assert card["training"]["note"] == note
    assert command.startswith(f"flowengine train --data {csv} --label defect --horizon 20s")
    assert "--model gradient_boosting --folds 2" in command and command.endswith(str(out))
    markdown = ml.card_path(out).with_suffix(".md").read_text()
    assert f"- Made with: `{command}`" in markdown and note in markdown
    again = tmp_path / "again.joblib"
    words = shlex.split(command.replace(str(out), str(again)))[1:]  # without `flowengine`
    assert CliRunner().invoke(main, words).exit_code == 0
    redo = json.loads(ml.card_path(again).read_text())
    assert redo["metrics"] == card["metrics"] and redo["features"] == card["features"]


def test_trains_from_a_sql_table_with_chosen_features(csv: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    engine = sa.create_engine(url)
    history(11, 0.5).to_sql("features", engine, index=False)
    engine.dispose()
    out = tmp_path / "m.joblib"
    feats = "roll_force_std,strip_thickness_std"
    args = ["train", "--data", url, "--query", "features", "--label", "defect"]
    result = CliRunner().invoke(
        main, [*args, "--features", feats, "--features", "furnace_temp_mean", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert ml.load_model(out).features == [
        "roll_force_std",
        "strip_thickness_std",
        "furnace_temp_mean",
    ]
    assert json.loads(ml.card_path(out).read_text())["data"]["source"] == "sqlite://..."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label", "scrap"], "no label column 'scrap'"),
        (["--label", "defect", "--features", "nope"], "lacks feature column(s): nope"),
        (["--label", "defect", "--data", "/nonexistent.csv"], "no such file"),
        (["--label", "defect", "--data", "sqlite:///x.db"], "needs --query"),
    ],
)
def test_bad_input_is_one_clear_line(
    csv: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    data = [] if "--data" in args else ["--data", str(csv)]
    result = CliRunner().invoke(main, ["train", *data, *args, "--out", str(tmp_path / "m.joblib")])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m.joblib").exists()
