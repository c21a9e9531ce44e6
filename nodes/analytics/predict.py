"""Predict: score feature rows with a trained model (scikit-learn, skops or ONNX), hot-reloaded."""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationInfo, field_validator

from flowengine.node import NodeConfig, Transform, option
from flowengine.nodes.analytics import ml
from flowengine.nodes.analytics.windows import parse_duration
from flowengine.types import Batch, Result


class PredictConfig(NodeConfig):
    model: str = option(
        description="Model file (relative to the flow file): .joblib/.pkl (a scikit-learn "
        "classifier or pipeline; a pickle, so only files you trust), .skops or .onnx. "
        "A `<stem>.card.json` beside it (written by `flowengine train`) names its features.",
        examples=["models/line3.joblib"],
    )
    features: list[str] | None = option(
        None,
        description="Feature columns in model order; default: the card's, else the model's "
        "own `feature_names_in_`.",
    )
    output: str = option("defect_probability", description="Column for the probability.")
    class_column: str | None = option(
        "defect_class",
        description="Column for the most likely class, for models with more than two classes.",
    )
    negative_class: str | int | None = option(
        None,
        description="The class meaning 'no defect' (default: 0, 'normal', 'ok', ... or the "
        "first class); the probability is 1 - P(this class).",
    )
    top_features: int = option(
        3,
        ge=0,
        description="Name this many top contributing features per row in `top_features` "
        "(importance x deviation from normal, from the card); 0 turns it off.",
    )
    keep_features: bool = option(
        True, description="Pass the input columns through (false: time, keys and outputs only)."
    )
    reload: bool = option(True, description="Reload the model when its file changes.")
    check_every: str = option(
        "2s", advanced=True, description="How often to look at the model file for a change."
    )
    threads: int = option(
        1,
        ge=1,
        advanced=True,
        description="OpenMP threads for scoring (process-wide). One is fastest for the small "
        "batches of a live flow: a thread pool's wake-up costs more than it saves.",
    )
    trusted: list[str] = option(
        [],
        advanced=True,
        description="Extra types a .skops file may load (skops refuses unknown types).",
    )

    @field_validator("model")
    @classmethod
    def _suffix(cls, model: str, info: ValidationInfo) -> str:
        if not model.endswith(ml.SUFFIXES):
            raise ValueError(f"model file must end in {', '.join(ml.SUFFIXES)}")
        for suffix, module, extra in (
            (".onnx", "onnxruntime", "onnx"),
            (".skops", "skops", "skops"),
        ):
            if model.endswith(suffix) and importlib.util.find_spec(module) is None:
                raise ValueError(
                    f"{suffix[1:]} models need {module}: install 'flowengine[{extra}]' "
                    f'(pip install "flowengine[{extra}]")'
                )
        flow_dir = (info.context or {}).get("flow_dir")
        if flow_dir is not None and not (Path(flow_dir) / model).exists():
            raise ValueError(f"model file not found: {Path(flow_dir) / model}")
        return model

    @field_validator("check_every")
    @classmethod
    def _duration(cls, text: str) -> str:
        if parse_duration(text) <= 0:
            raise ValueError("check_every must be positive")
        return text


def limit_threads(threads: int) -> None:
    """Cap OpenMP threads (process-wide): scikit-learn's tree ensembles use one per core by
    default, and a one-row batch on a busy box then costs ~50x more than with one thread.
    Call it after the model is loaded: before scikit-learn is imported there is no OpenMP
    runtime to limit, and the call does nothing."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    threadpool_limits(threads, user_api="openmp")


def load(path: Path, cfg: PredictConfig) -> ml.LoadedModel:
    """The model file at ``path`` as ``cfg`` says to read it (features, classes, trust)."""
    return ml.load_model(path, cfg.features, negative=cfg.negative_class, trusted=cfg.trusted)


def score(model: ml.LoadedModel, frame: pd.DataFrame, cfg: PredictConfig) -> pd.DataFrame:
    """``frame`` with the outputs added: what the node sends and what
    ``flowengine.inference.DefectPredictionEngine`` returns. A KeyError names missing features."""
    x = model.matrix(frame)
    proba = model.probabilities(x)
    columns: dict[str, Any] = {cfg.output: model.defect_probability(proba)}
    if cfg.class_column and len(model.classes) > 2:
        columns[cfg.class_column] = np.asarray(model.classes, dtype=object)[proba.argmax(axis=1)]
    columns["model_version"] = model.version
    if cfg.top_features:
        columns["top_features"] = model.top_features(x, cfg.top_features)
    if not cfg.keep_features:
        used = set(model.features)
        frame = frame[[c for c in frame.columns if c not in used]]
    return frame.assign(**columns)


class Predict(Transform[PredictConfig]):
    """Add `defect_probability` (and `defect_class` for multi-class models), `model_version`
    and `top_features` to each feature row.

    The model file is watched: a changed file is loaded in a worker thread while batches go on
    with the previous model, then swapped in between batches, so a retrain never drops or
    delays a batch. A file that fails to load leaves the old model running and says so in the
    node's status. A batch without the model's feature columns goes to the error port with the
    missing columns named.

    Nothing is checkpointed: the model, its reload task and the file stamp are not data, and
    a restart loads the file as it is then, the version the running node would have reloaded.
    """

    icon = "psychology"

    async def start(self) -> None:
        cfg = self.config
        path = Path(cfg.model)
        self._path = path if path.is_absolute() else self.ctx.flow_dir / path
        if not self._path.exists():
            raise FileNotFoundError(f"model file not found: {self._path}")
        self._stamp = self._file_stamp()
        self._model = await asyncio.to_thread(load, self._path, cfg)
        limit_threads(cfg.threads)  # after the load: OpenMP exists only once sklearn is imported
        self._loading: asyncio.Task[ml.LoadedModel] | None = None
        self._checked = self.ctx.clock.monotonic()
        self._every = parse_duration(cfg.check_every) / 1e9
        self.ctx.status(f"model {self._model.version}")

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return None  # being replaced: look again next time
        return st.st_mtime_ns, st.st_size

    def _watch(self) -> None:
        """Swap in a finished reload; start one when the file changed."""
        task = self._loading
        if task is not None and task.done():
            self._loading = None
            exc = task.exception()
            if exc is None:
                old, self._model = self._model.version, task.result()
                self.ctx.count("reloads")
                self.ctx.log.info("model reloaded: %s -> %s", old, self._model.version)
                self.ctx.status(f"model {self._model.version}")
            else:
                self.ctx.log.error("model reload failed, keeping %s: %s", self._model.version, exc)
                self.ctx.status(f"reload failed, using {self._model.version}: {exc}")
        now = self.ctx.clock.monotonic()
        if self._loading is not None or now - self._checked < self._every:
            return
        self._checked = now
        stamp = self._file_stamp()
        if stamp is not None and stamp != self._stamp:
            self._stamp = stamp
            self._loading = asyncio.get_running_loop().create_task(
                asyncio.to_thread(load, self._path, self.config)
            )

    async def process(self, batch: Batch) -> Result:
        if self.config.reload:
            self._watch()
        return score(self._model, batch.frame, self.config)  # KeyError -> error port

    async def close(self) -> None:
        loading = getattr(self, "_loading", None)
        if loading is not None:
            loading.cancel()
