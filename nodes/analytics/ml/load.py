"""Loading a model file (joblib, skops or ONNX) and its card into a :class:`LoadedModel`."""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flowengine.extras import require
from flowengine.nodes.analytics.ml.card import card_path

SUFFIXES = (".joblib", ".pkl", ".pickle", ".skops", ".onnx")
NEGATIVE = (0, "0", False, "normal", "ok", "none", "good")

#: Float array (n, features) -> probabilities (n, classes).
Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass
class LoadedModel:
    """A model ready to score frames: ``probabilities(frame)`` -> (n, classes) array."""

    path: Path
    version: str
    features: list[str]
    classes: list[Any]
    negative: Any
    scorer: Scorer
    importance: dict[str, float] = field(default_factory=dict)
    center: dict[str, float] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # per-feature arrays for top_features, built once instead of on every batch
        names = self.features
        self._weight = np.maximum([self.importance.get(n, 0.0) for n in names], 0.0)
        self._center = np.array([self.center.get(n, 0.0) for n in names])
        self._scale = np.array([self.scale.get(n, 1.0) or 1.0 for n in names])

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The feature matrix of ``frame`` in model order; names the missing columns."""
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise KeyError(
                f"input lacks {len(missing)} feature column(s) the model needs: "
                f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}"
            )
        return frame[self.features].to_numpy(dtype=np.float64, na_value=np.nan)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.scorer(x), dtype=np.float64)

    def defect_probability(self, proba: np.ndarray) -> np.ndarray:
        """Probability of anything but the normal class (binary: of the positive class)."""
        if self.negative in self.classes:
            return 1.0 - proba[:, self.classes.index(self.negative)]
        return proba[:, -1]

    def top_features(self, x: np.ndarray, count: int) -> list[str]:
        """Per row, the features contributing most: importance x distance from normal (in
        scales), from the card; empty strings when the card does not say."""
        if not self.importance or count <= 0 or not len(x):
            return [""] * len(x)
        names = self.features
        score = np.nan_to_num(np.abs((x - self._center) / self._scale)) * self._weight
        count = min(count, score.shape[1])
        top = np.argpartition(-score, count - 1, axis=1)[:, :count]  # the top, unordered
        rows = np.arange(len(score))[:, None]
        best = np.take_along_axis(top, np.argsort(-score[rows, top], axis=1), axis=1)
        return [", ".join(names[j] for j in row if score[i, j] > 0) for i, row in enumerate(best)]


def file_version(path: Path, card: dict[str, Any], data: bytes) -> str:
    """``<name>@<sha256 prefix of the file's bytes>``: changes whenever the model file does."""
    return f"{card.get('name') or path.stem}@{hashlib.sha256(data).hexdigest()[:12]}"


def negative_class(classes: Sequence[Any], configured: Any = None) -> Any:
    """The normal class: ``configured``, else the first of :data:`NEGATIVE` present, else the
    first class (numpy scalars match by value, but never a string against a number)."""
    if configured is not None:
        return configured
    for value in NEGATIVE:
        for c in classes:
            if type(c) is type(value) and c == value:
                return c
            if isinstance(c, np.generic) and c.item() == value and not isinstance(value, str):
                return c
    return classes[0] if classes else None


def load_model(
    path: str | Path,
    features: Sequence[str] | None = None,
    *,
    negative: Any = None,
    trusted: Sequence[str] = (),
) -> LoadedModel:
    """Load a model file (by suffix) and its card; ``features`` overrides the names it knows."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"model file must end in {', '.join(SUFFIXES)}: {path}")
    card_file = card_path(path)
    card = json.loads(card_file.read_text()) if card_file.exists() else {}
    data = path.read_bytes()  # read once: the version names exactly the bytes loaded
    if path.suffix == ".onnx":
        scorer, names, classes = _load_onnx(data)
    else:
        scorer, names, classes, card = _sklearn_scorer(path, data, trusted, card)
    names = list(features or card.get("features") or names)
    if not names:
        raise ValueError(
            f"{path.name}: the model does not name its features; set 'features' or train it "
            "on a DataFrame (or with flowengine train, which writes a card)"
        )
    if path.suffix == ".onnx":  # sklearn's classes_ is the truth for its own columns
        classes = list(card.get("classes") or classes)
    return LoadedModel(
        path=path,
        version=file_version(path, card, data),
        features=names,
        classes=classes,
        negative=negative_class(classes, negative),
        scorer=scorer,
        importance=card.get("importance", {}),
        center=card.get("center", {}),
        scale=card.get("scale", {}),
        card=card,
    )


def _sklearn_scorer(
    path: Path, data: bytes, trusted: Sequence[str], card: dict[str, Any]
) -> tuple[Scorer, list[str], list[Any], dict[str, Any]]:
    """Scorer, feature names and classes of a scikit-learn file; the card gains the model's
    own feature importances when it has none."""
    model = _load_sklearn(path, data, trusted)
    if not hasattr(model, "predict_proba"):
        raise TypeError(f"{path.name}: {type(model).__name__} has no predict_proba")
    classes = list(getattr(model, "classes_", [0, 1]))
    names = [str(n) for n in getattr(model, "feature_names_in_", [])]
    scorer = _named(model, names) if names else model.predict_proba
    if not card.get("importance") and hasattr(model, "feature_importances_") and names:
        importance = dict(zip(names, map(float, model.feature_importances_), strict=True))
        card = {**card, "importance": importance}
    return scorer, names, classes, card


def _named(model: Any, names: list[str]) -> Scorer:
    """predict_proba for a model fitted on a frame with ``names``.

    A pipeline gets a frame with those names (its steps may select columns by name). A plain
    estimator gets the array, in the order ``LoadedModel.matrix`` already put it: checking a
    250-column frame's dtypes costs scikit-learn ~3 ms a call, more than the trees do, and the
    only thing it would check, the names, were matched before.
    """
    if hasattr(model, "steps") or hasattr(model, "transformers"):

        def score_frame(x: np.ndarray) -> np.ndarray:
            return np.asarray(model.predict_proba(pd.DataFrame(x, columns=names)))

        return score_frame

    def score(x: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            return np.asarray(model.predict_proba(x))

    return score


def _load_sklearn(path: Path, data: bytes, trusted: Sequence[str]) -> Any:
    if path.suffix == ".skops":
        require("skops", "skops")
        from skops import io as skio

        # scikit-learn's own classes are constructed, not called: trust them; anything else
        # (a function, a third-party class) must be listed
        found = skio.get_untrusted_types(data=data)
        trusted = [*trusted, *(t for t in found if t.startswith("sklearn."))]
        unknown = [t for t in found if t not in trusted]
        if unknown:
            raise ValueError(
                f"{path.name} holds types skops does not trust by default: {', '.join(unknown)}; "
                "list them in the node's 'trusted' field if you trust this file"
            )
        return skio.loads(data, trusted=list(trusted) or None)
    import joblib

    try:
        return joblib.load(io.BytesIO(data))
    except Exception as exc:  # a pickle fails in many ways (KeyError on garbage, for one)
        raise ValueError(f"cannot load {path.name}: {type(exc).__name__}: {exc}") from exc


def _load_onnx(data: bytes) -> tuple[Scorer, list[str], list[Any]]:
    """An ONNX classifier: a float input (n, features); probabilities as a tensor or a
    sequence of maps (skl2onnx's zipmap)."""
    require("onnxruntime", "onnx")
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    names = json.loads(meta["features"]) if "features" in meta else []
    classes = json.loads(meta["classes"]) if "classes" in meta else []
    inp = session.get_inputs()[0].name
    outputs = session.get_outputs()
    prob = next((o for o in outputs if "prob" in o.name.lower()), outputs[-1])

    def score(x: np.ndarray) -> np.ndarray:
        got = session.run([prob.name], {inp: x.astype(np.float32)})[0]
        if isinstance(got, list):  # zipmap: [{class: p}, ...]
            keys = classes or sorted(got[0])
            return np.array([[row[k] for k in keys] for row in got])
        return np.asarray(got)

    return score, names, classes
