"""Writing a trained model (joblib, skops or ONNX by suffix) with its JSON and Markdown card."""

from __future__ import annotations

import json
from pathlib import Path

from flowengine.extras import require
from flowengine.nodes.analytics.ml.card import card_markdown, card_path
from flowengine.nodes.analytics.ml.load import SUFFIXES
from flowengine.nodes.analytics.ml.training import Trained


def save(trained: Trained, out: str | Path) -> tuple[Path, Path, Path]:
    """Write the model (format by suffix), ``<stem>.card.json`` and ``<stem>.card.md``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix == ".onnx":
        _save_onnx(trained, tmp)
    elif out.suffix == ".skops":
        require("skops", "skops")
        from skops import io as skio

        skio.dump(trained.model, tmp)
    elif out.suffix in (".joblib", ".pkl", ".pickle"):
        import joblib

        joblib.dump(trained.model, tmp, compress=3)
    else:
        raise ValueError(f"--out must end in {', '.join(SUFFIXES)}")
    card_json = card_path(out)
    card_json.write_text(json.dumps(trained.card, indent=2, default=str) + "\n")
    card_md = card_json.with_suffix(".md")
    card_md.write_text(card_markdown(trained.card))
    tmp.replace(out)  # last, atomically: a running predictor reloads a complete file
    return out, card_json, card_md


def _save_onnx(trained: Trained, path: Path) -> None:
    """The model as an ONNX graph, its features and classes in the graph's metadata."""
    require("skl2onnx", "onnx")
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    n = len(trained.card["features"])
    if trained.card["model"]["kind"] == "gradient_boosting":
        raise ValueError(
            "skl2onnx cannot convert HistGradientBoostingClassifier with this scikit-learn "
            "(its leaves get a boolean attribute ONNX refuses): use --model random_forest or "
            "logistic for an .onnx file, or write .joblib/.skops"
        )
    onx = to_onnx(
        trained.model,
        initial_types=[("features", FloatTensorType([None, n]))],
        options={id(trained.model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    for key, value in (
        ("features", trained.card["features"]),
        ("classes", trained.card["classes"]),
    ):
        entry = onx.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    path.write_bytes(onx.SerializeToString())
