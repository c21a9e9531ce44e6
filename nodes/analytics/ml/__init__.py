"""Defect models: load (joblib, skops, ONNX), score frames by feature name, train with a card.

One package serves the ``predict`` node and ``flowengine train`` so that both agree on what a
model file is: the estimator file itself (any scikit-learn classifier or pipeline, or an ONNX
graph), plus an optional model card beside it (``<stem>.card.json``) that ``train`` writes with
the feature list, metrics, data range, versions, and what the predictor needs to name the top
contributing features (feature importances and the normal-operation centre and scale).

joblib files are pickles: loading one runs code, so only load models you made or trust; the
``.skops`` format loads only trusted types, and ONNX is data only.
"""

from __future__ import annotations

from flowengine.nodes.analytics.ml.card import build_card, card_markdown, card_path
from flowengine.nodes.analytics.ml.data import read_data
from flowengine.nodes.analytics.ml.load import (
    NEGATIVE,
    SUFFIXES,
    LoadedModel,
    file_version,
    load_model,
    negative_class,
)
from flowengine.nodes.analytics.ml.save import save
from flowengine.nodes.analytics.ml.training import (
    MODELS,
    Target,
    Trained,
    default_features,
    horizon_target,
    make_estimator,
    train,
)

__all__ = [
    "MODELS",
    "NEGATIVE",
    "SUFFIXES",
    "LoadedModel",
    "Target",
    "Trained",
    "build_card",
    "card_markdown",
    "card_path",
    "default_features",
    "file_version",
    "horizon_target",
    "load_model",
    "make_estimator",
    "negative_class",
    "read_data",
    "save",
    "train",
]
