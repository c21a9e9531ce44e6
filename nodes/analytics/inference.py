"""The seed's inference API for scripts: ``FeatureEngineer`` and ``DefectPredictionEngine``.

The seed document's loop reads a connector, turns the readings into features and scores them::

    engine = DefectPredictionEngine("configs/inference_config.yaml")
    feature_engineer = engine.feature_engineer()
    features = feature_engineer.transform(connector.read_data())
    if engine.predict(features)["defect_probability"] > engine.threshold: ...

Both classes are thin over the code of the ``features`` and ``predict`` nodes: their settings
are the nodes' configs (``FeaturesConfig``, ``PredictConfig``), the windows come from
``FeaturesConfig.featurizer`` and the scores from ``predict.load`` and ``predict.score``, so a
script and a flow with the same settings give the same numbers. Scripts import them from
``flowengine.inference``, which loads this module on first use.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, ValidationError, model_validator

from flowengine.envsubst import EnvError, substitute
from flowengine.node import option
from flowengine.nodes.analytics import ml
from flowengine.nodes.analytics.features import FeaturesConfig
from flowengine.nodes.analytics.predict import PredictConfig, limit_threads, load, score

log = logging.getLogger("flowengine.inference")


class InferenceConfig(BaseModel):
    """The inference config YAML: the model, the alert threshold and the two nodes' settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str = option(
        validation_alias=AliasChoices("model", "model_path"),
        description="Model file (relative to the config file), as the `predict` node's `model`; "
        "`model_path` is accepted too.",
        examples=["../flows/models/line3.joblib"],
    )
    threshold: float = option(
        0.8, ge=0, le=1, description="Alert when `defect_probability` is above this."
    )
    polling_interval: float = option(1.0, gt=0, description="Seconds between reads in the loop.")
    features: FeaturesConfig = option(
        default_factory=FeaturesConfig, description="The `features` node's settings."
    )
    predict: PredictConfig = option(
        description="The `predict` node's settings other than `model` (e.g. `top_features`)."
    )

    @model_validator(mode="before")
    @classmethod
    def _model_into_predict(cls, data: Any) -> Any:
        """The top-level model is the predict settings' model (one place to write it)."""
        if isinstance(data, Mapping):
            model = data.get("model", data.get("model_path"))
            section = data.get("predict") or {}
            if isinstance(section, Mapping) and model is not None:
                if "model" in section:
                    raise ValueError("write the model once, at the top level (not in 'predict')")
                data = {**data, "predict": {**section, "model": model}}
        return data


def read_config(source: str | Path | Mapping[str, Any]) -> tuple[InferenceConfig, Path]:
    """An inference config from a YAML file (``${VAR}`` substituted), a mapping or a bare model
    file; with the folder its relative paths start from."""
    if isinstance(source, Mapping):
        data, base, name = dict(source), Path.cwd(), "inference config"
    else:
        path = Path(source)
        base, name = path.resolve().parent, str(path)
        if path.name.endswith(ml.SUFFIXES):  # a model file alone: every other setting default
            data = {"model": path.name}
        else:
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise FileNotFoundError(f"inference config not found: {path}") from None
            except yaml.YAMLError as exc:
                raise ValueError(f"{name}: not valid YAML: {exc}") from None
            if not isinstance(data, dict):
                raise ValueError(f"{name}: expected a mapping with at least 'model'")
            try:
                data = substitute(data, os.environ)
            except EnvError as exc:
                raise ValueError(f"{name}: {exc}") from None
    try:
        config = InferenceConfig.model_validate(data, context={"flow_dir": base})
    except ValidationError as exc:
        raise ValueError(f"{name}: {'; '.join(_problems(exc))}") from None
    return config, base


def _problems(exc: ValidationError) -> list[str]:
    """pydantic's errors in the flow checker's words: the field, then what is wrong."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if loc in ("predict", "predict.model"):  # the model is written at the top level
            if err["type"] == "missing":
                continue  # 'model' is missing too, and says so
            loc = "model"
        if err["type"] == "missing":
            out.append(f"missing required field '{loc}'")
        elif err["type"] == "extra_forbidden":
            out.append(f"unknown field '{loc}'")
        else:
            text = err["msg"].removeprefix("Value error, ")
            out.append(f"field '{loc}': {text}" if loc else text)
    return out


class FeatureEngineer:
    """The `features` node for scripts: ``transform(long readings) -> wide feature rows``.

    Windows live across calls, as in the node: a call returns the rows of the windows that its
    readings completed (none until the first window has ended), ``flush`` the rest. Late rows
    are left out and counted in ``late_rows`` (the node sends them to its error port).
    """

    def __init__(
        self, config: FeaturesConfig | Mapping[str, Any] | str | Path | None = None, **settings: Any
    ) -> None:
        """``config``: the node's settings, or an inference config file (its ``features``);
        keyword settings override them (``FeatureEngineer(size="10s", step="1s")``)."""
        if isinstance(config, str | Path):
            config = read_config(config)[0].features
        if isinstance(config, FeaturesConfig) and not settings:
            self.config = config
        else:
            base = config.model_dump() if isinstance(config, FeaturesConfig) else config or {}
            self.config = FeaturesConfig.model_validate({**base, **settings})
        self.stream = self.config.featurizer()
        self.late_rows = 0

    def transform(self, sensor_data: pd.DataFrame | None) -> pd.DataFrame:
        """Feature rows (``timestamp``, the ``by`` columns, ``<sensor>_<aggregation>``...) of the
        windows ``sensor_data`` completed; an empty frame when none has ended yet."""
        if sensor_data is None:  # a connector with nothing new: no rows, the usual columns
            stream = self.stream
            columns = ["timestamp", stream.key, stream.value, *stream.by, *stream.labels]
            sensor_data = pd.DataFrame({c: [] for c in columns})
        rows, late = self.stream.push(sensor_data)
        if len(late):
            self.late_rows += len(late)
            log.warning("%d late row(s) left out (older than the windows already out)", len(late))
        return rows

    def flush(self) -> pd.DataFrame:
        """The windows still open (end of the data)."""
        return self.stream.flush()


class DefectPredictionEngine:
    """The `predict` node for scripts: a model and its settings from an inference config.

    ``predict(features)`` scores feature rows as the node does and returns the newest row's
    outputs as a dict; ``predict_frame`` returns every row, as the node emits them.
    """

    def __init__(self, config: str | Path | Mapping[str, Any] | InferenceConfig) -> None:
        """``config``: an inference config YAML file (or its contents as a mapping), or a model
        file with default settings. The model is loaded here, once; as in the node, OpenMP is
        held to ``predict.threads`` (process-wide), fastest for a few rows at a time."""
        if isinstance(config, InferenceConfig):
            self.config, base = config, Path.cwd()
        else:
            self.config, base = read_config(config)
        path = Path(self.config.predict.model)
        self.model_path = Path(os.path.normpath(path if path.is_absolute() else base / path))
        if not self.model_path.exists():
            raise FileNotFoundError(f"model file not found: {self.model_path}")
        self.model = load(self.model_path, self.config.predict)
        limit_threads(self.config.predict.threads)  # after the load (see limit_threads)

    @property
    def threshold(self) -> float:
        return self.config.threshold

    @property
    def polling_interval(self) -> float:
        return self.config.polling_interval

    @property
    def version(self) -> str:
        """``<name>@<sha256 prefix>`` of the model file, as in the node's ``model_version``."""
        return self.model.version

    @property
    def features(self) -> list[str]:
        """The feature columns the model needs, in its order."""
        return list(self.model.features)

    def feature_engineer(self) -> FeatureEngineer:
        """A ``FeatureEngineer`` with this config's feature settings (new windows each call)."""
        return FeatureEngineer(self.config.features)

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """Every row scored: the rows with the predict node's columns added (``keep_features``
        as configured). A KeyError names the feature columns that are missing."""
        return score(self.model, features, self.config.predict)

    def predict(self, features: pd.DataFrame | Mapping[str, Any]) -> dict[str, Any]:
        """The outputs of the row with the highest ``defect_probability`` (the newest among
        equal ones) after scoring every row: ``defect_probability``, ``model_version``,
        ``top_features`` (``defect_class`` for multi-class models) and the row's keys such as
        ``timestamp`` and ``line``; ``rows`` says how many rows ``features`` held.

        With no rows (no window has ended yet) ``defect_probability`` is NaN, which is above
        no threshold, so the seed's loop runs as written from the first read.
        """
        frame = pd.DataFrame([dict(features)]) if isinstance(features, Mapping) else features
        cfg = self.config.predict
        if frame.empty:
            return {cfg.output: math.nan, "model_version": self.version, "rows": 0}
        scored = score(self.model, frame, cfg)  # every window: one read may end several
        used = set(self.model.features)
        # the riskiest row (the newest among equals), so `> threshold` misses no window
        at = scored[cfg.output].fillna(-1.0).to_numpy()[::-1].argmax()
        row = scored.iloc[len(scored) - 1 - at]
        out = {str(k): _plain(v) for k, v in row.items() if k not in used}
        out["rows"] = len(frame)
        return out


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones, so the dict prints and serialises plainly."""
    return value.item() if isinstance(value, np.generic) else value
