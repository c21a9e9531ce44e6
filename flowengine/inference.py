"""The seed's inference API, usable without a flow.

    from flowengine.connectors import OPCUAConnector
    from flowengine.inference import DefectPredictionEngine

    engine = DefectPredictionEngine("configs/inference_config.yaml")
    feature_engineer = engine.feature_engineer()
    features = feature_engineer.transform(connector.read_data())
    predictions = engine.predict(features)  # {"defect_probability": 0.12, ...}

``FeatureEngineer`` and ``DefectPredictionEngine`` are the code of the ``features`` and
``predict`` nodes (flowengine.nodes.analytics.inference), so a script scores as a flow does.
They are loaded by name on first use: importing this module imports no node family, and the
core stays free of them (docs/seed-integration.md).
"""

from __future__ import annotations

import importlib
from typing import Any

#: What this module offers, all from one module of the analytics family. No ``__all__`` and no
#: TYPE_CHECKING import: either would name the classes here, and the layer contract forbids
#: the core any import of a node family.
_NAMES = ("DefectPredictionEngine", "FeatureEngineer", "InferenceConfig")
_MODULE = "flowengine.nodes.analytics.inference"


def __getattr__(name: str) -> Any:
    """Load the analytics family's inference module on first use of one of its classes."""
    if name in _NAMES:
        return getattr(importlib.import_module(_MODULE), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])
