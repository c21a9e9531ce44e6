"""Defect models: load (joblib, skops, ONNX), score frames by feature name, train with a card.

One module serves the ``predict`` node and ``flowengine train`` so that both agree on what a
model file is: the estimator file itself (any scikit-learn classifier or pipeline, or an ONNX
graph), plus an optional model card beside it (``<stem>.card.json``) that ``train`` writes with
the feature list, metrics, data range, versions, and what the predictor needs to name the top
contributing features (feature importances and the normal-operation centre and scale).

joblib files are pickles: loading one runs code, so only load models you made or trust; the
``.skops`` format loads only trusted types, and ONNX is data only.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from flowengine.nodes.analytics.windows import to_ns

from flowengine import __version__
from flowengine.extras import require

SUFFIXES = (".joblib", ".pkl", ".pickle", ".skops", ".onnx")
NEGATIVE = (0, "0", False, "normal", "ok", "none", "good")


def card_path(model: Path) -> Path:
    """Where the card of ``model`` lives: ``line3.joblib`` -> ``line3.card.json``."""
    return model.with_name(f"{model.stem}.card.json")


@dataclass
class LoadedModel:
    """A model ready to score frames: ``probabilities(frame)`` -> (n, classes) array."""

    path: Path
    version: str
    features: list[str]
    classes: list[Any]
    negative: Any
    scorer: Any  # callable: float array (n, features) -> probabilities (n, classes)
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


def _negative(classes: Sequence[Any], configured: Any = None) -> Any:
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
        model = _load_sklearn(path, data, trusted)
        if not hasattr(model, "predict_proba"):
            raise TypeError(f"{path.name}: {type(model).__name__} has no predict_proba")
        classes = list(getattr(model, "classes_", [0, 1]))
        names = [str(n) for n in getattr(model, "feature_names_in_", [])]
        scorer = _named(model, names) if names else model.predict_proba
        if not card.get("importance") and hasattr(model, "feature_importances_") and names:
            card = {
                **card,
                "importance": dict(zip(names, map(float, model.feature_importances_), strict=True)),
            }
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
        negative=_negative(classes, negative),
        scorer=scorer,
        importance=card.get("importance", {}),
        center=card.get("center", {}),
        scale=card.get("scale", {}),
        card=card,
    )


def _named(model: Any, names: list[str]) -> Any:
    """predict_proba for a model fitted on a frame with ``names``.

    A pipeline gets a frame with those names (its steps may select columns by name). A plain
    estimator gets the array, in the order ``LoadedModel.matrix`` already put it: checking a
    250-column frame's dtypes costs scikit-learn ~3 ms a call, more than the trees do, and the
    only thing it would check, the names, were matched before.
    """
    if hasattr(model, "steps") or hasattr(model, "transformers"):

        def score_frame(x: np.ndarray) -> np.ndarray:
            return model.predict_proba(pd.DataFrame(x, columns=names))

        return score_frame

    def score(x: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            return model.predict_proba(x)

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


def _load_onnx(data: bytes) -> tuple[Any, list[str], list[Any]]:
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


# ---- training ------------------------------------------------------------------------------
def horizon_target(
    frame: pd.DataFrame,
    label: str,
    horizon: float,
    *,
    time: str = "timestamp",
    by: Sequence[str] = (),
) -> pd.Series:
    """The label "a defect starts within ``horizon`` seconds" (or is on now), per group.

    For a binary label, a row is positive when any row of its group at or after it, and no more
    than ``horizon`` later, has a positive label. For a multi-class label the next non-normal
    class within the horizon is taken. ``horizon`` 0 keeps the label as it is.
    """
    y = frame[label]
    if horizon <= 0:
        return y
    classes = sorted(y.dropna().unique().tolist(), key=str)
    neg = _negative(classes)
    t = to_ns(frame[time])
    out = np.empty(len(frame), dtype=object)
    groups = frame.groupby(list(by), sort=False).indices if by else {None: np.arange(len(frame))}
    for idx in groups.values():
        idx = idx[np.argsort(t[idx], kind="stable")]
        tt, yy = t[idx], y.to_numpy()[idx]
        bad = np.array([v != neg and not pd.isna(v) for v in yy])
        # time and class of the next bad row at or after each row, scanning backwards
        nxt_t = np.full(len(idx), np.iinfo(np.int64).max)
        nxt_v = np.empty(len(idx), dtype=object)
        cur_t, cur_v = np.iinfo(np.int64).max, neg
        for i in range(len(idx) - 1, -1, -1):
            if bad[i]:
                cur_t, cur_v = tt[i], yy[i]
            nxt_t[i], nxt_v[i] = cur_t, cur_v
        soon = (nxt_t - tt) <= horizon * 1e9
        out[idx] = np.where(soon, nxt_v, neg)
    result = pd.Series(out, index=frame.index, name=label)
    return result.astype(y.dtype) if y.dtype.kind in "biuf" else result


def default_features(frame: pd.DataFrame, label: str, exclude: Sequence[str] = ()) -> list[str]:
    """Numeric columns other than the label, times and ids."""
    skip = {label, "timestamp", "window_start", *exclude}
    return [
        c
        for c in frame.columns
        if c not in skip
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]


def make_estimator(kind: str = "gradient_boosting", seed: int = 0) -> Any:
    """The estimators ``train`` offers; gradient boosting handles missing values itself."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "gradient_boosting":
        return HistGradientBoostingClassifier(
            max_iter=200,
            learning_rate=0.1,
            max_leaf_nodes=31,
            l2_regularization=1.0,
            early_stopping=True,  # fewer trees: each one costs time on every live prediction
            validation_fraction=0.15,
            n_iter_no_change=15,
            random_state=seed,
        )
    if kind == "random_forest":
        return make_pipeline(
            SimpleImputer(),
            RandomForestClassifier(300, min_samples_leaf=3, random_state=seed, n_jobs=1),
        )
    if kind == "logistic":
        return make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=2000))
    raise ValueError(f"unknown model {kind!r}: gradient_boosting, random_forest or logistic")


MODELS = ("gradient_boosting", "random_forest", "logistic")


@dataclass
class Trained:
    model: Any
    card: dict[str, Any]


def train(
    frame: pd.DataFrame,
    label: str,
    *,
    features: Sequence[str] | None = None,
    horizon: float = 0.0,
    kind: str = "gradient_boosting",
    folds: int = 5,
    time: str = "timestamp",
    by: Sequence[str] = ("line",),
    source: str = "",
    name: str = "",
    seed: int = 0,
) -> Trained:
    """Fit on ``frame`` (time-ordered), cross-validate with time-ordered folds, build the card."""
    from sklearn.base import clone
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import TimeSeriesSplit

    if label not in frame.columns:
        raise KeyError(
            f"the data has no label column '{label}' (columns: {', '.join(frame.columns[:20])})"
        )
    if time not in frame.columns:
        raise KeyError(f"the data has no time column '{time}'")
    frame = frame.dropna(subset=[label])
    frame = frame.assign(**{time: pd.to_datetime(frame[time], utc=True)})
    frame = frame.sort_values(time, kind="stable").reset_index(drop=True)
    groups = [c for c in by if c in frame.columns]
    y = horizon_target(frame, label, horizon, time=time, by=groups)
    names = list(features) if features else default_features(frame, label, groups)
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise KeyError(f"the data lacks feature column(s): {', '.join(missing)}")
    x = frame[names].astype(float)
    classes = sorted(y.unique().tolist(), key=str)
    if len(classes) < 2:
        raise ValueError(f"label '{label}' has one class only ({classes[0]!r}): nothing to learn")
    binary = len(classes) == 2
    neg = _negative(classes)
    positive = next(c for c in classes if c != neg) if binary else None
    # leave a gap between train and test rows as long as the horizon (label leakage)
    step = frame[time].diff().median()
    gap = (
        int(np.ceil(horizon / max(step.total_seconds(), 1e-9)))
        if horizon > 0 and pd.notna(step)
        else 0
    )
    splitter = TimeSeriesSplit(n_splits=folds, gap=min(gap, len(frame) // (folds + 2)))
    fold_rows, scores = [], []
    estimator = make_estimator(kind, seed)
    last_test: tuple[pd.DataFrame, pd.Series, Any] | None = None
    for train_idx, test_idx in splitter.split(x):
        ytr, yte = y.iloc[train_idx], y.iloc[test_idx]
        row: dict[str, Any] = {
            "train_rows": len(train_idx),
            "test_rows": len(test_idx),
            "test_from": str(frame[time].iloc[test_idx[0]]),
            "test_to": str(frame[time].iloc[test_idx[-1]]),
        }
        if ytr.nunique() < 2 or yte.nunique() < 2:
            row["skipped"] = "one class only in this fold"
            fold_rows.append(row)
            continue
        model = clone(estimator).fit(x.iloc[train_idx], ytr)
        proba = model.predict_proba(x.iloc[test_idx])
        if binary:
            p = proba[:, list(model.classes_).index(positive)]
            row["roc_auc"] = float(roc_auc_score(yte == positive, p))
            row["average_precision"] = float(average_precision_score(yte == positive, p))
        else:
            row["roc_auc"] = float(
                roc_auc_score(yte, proba, multi_class="ovr", labels=model.classes_)
            )
        scores.append(row["roc_auc"])
        fold_rows.append(row)
        last_test = (x.iloc[test_idx], yte, model)
    model = clone(estimator).fit(x, y)
    importance: dict[str, float] = {}
    if last_test is not None:
        xt, yt, fold_model = last_test

        def scoring(est: Any, xs: pd.DataFrame, ys: pd.Series) -> float:
            proba = est.predict_proba(xs)
            if binary:
                return float(
                    roc_auc_score(ys == positive, proba[:, list(est.classes_).index(positive)])
                )
            return float(roc_auc_score(ys, proba, multi_class="ovr", labels=est.classes_))

        imp = permutation_importance(
            fold_model, xt, yt, scoring=scoring, n_repeats=3, random_state=seed
        )
        importance = {
            n: round(float(v), 6) for n, v in zip(names, imp.importances_mean, strict=True)
        }
    normal = x[(y == neg).to_numpy()] if neg is not None else x
    # the order of predict_proba's columns (numeric classes sort as numbers, not as text)
    classes = list(getattr(model, "classes_", classes))
    import sklearn

    card = {
        "name": name or "model",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": {
            "label": label,
            "horizon_seconds": horizon,
            "target": (
                f"'{label}' is not {neg!r} now or within the next {horizon:g} s"
                if horizon
                else f"'{label}'"
            ),
            "classes": [_plain(c) for c in classes],
            "positive": _plain(positive),
        },
        "model": {"kind": kind, "estimator": " ".join(repr(model).split())},
        "features": names,
        "data": {
            "source": source,
            "rows": len(frame),
            "from": str(frame[time].iloc[0]),
            "to": str(frame[time].iloc[-1]),
            "positives": int((y != neg).sum()),
            "groups": {c: sorted(map(str, frame[c].unique()))[:50] for c in groups},
        },
        "metrics": {
            "cv": "time-ordered folds (sklearn TimeSeriesSplit), each tested on rows after its training rows",
            "folds": fold_rows,
            "gap_rows": splitter.gap,
            "roc_auc_mean": float(np.mean(scores)) if scores else None,
            "roc_auc_std": float(np.std(scores)) if scores else None,
        },
        "importance": importance,
        "center": {n: float(v) for n, v in normal.median().items() if pd.notna(v)},
        "scale": {n: float(v) for n, v in _robust_scale(normal).items()},
        "versions": {
            "flowengine": __version__,
            "scikit-learn": sklearn.__version__,
            "pandas": pd.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "classes": [_plain(c) for c in classes],
    }
    return Trained(model, card)


def _robust_scale(x: pd.DataFrame) -> pd.Series:
    """Scale per feature: IQR / 1.349 (a std estimate that ignores episodes), std as fallback."""
    iqr = (x.quantile(0.75) - x.quantile(0.25)) / 1.349
    std = x.std()
    return iqr.where(iqr > 0, std).where(lambda s: s > 0, 1.0).fillna(1.0)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


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


def card_markdown(card: dict[str, Any]) -> str:
    """The card for people: what it predicts, from what, how well, and with what."""
    m, d, t = card["metrics"], card["data"], card["task"]
    auc = (
        "n/a" if m["roc_auc_mean"] is None else f"{m['roc_auc_mean']:.3f} ± {m['roc_auc_std']:.3f}"
    )
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"- Predicts: {t['target']} (classes {t['classes']})",
        f"- Model: {card['model']['kind']} (`{card['model']['estimator']}`)",
        f"- Trained: {card['created']} on {d['rows']} rows from {d['from']} to {d['to']} "
        f"({d['positives']} positive) — source: {d['source'] or 'a DataFrame'}",
        f"- Cross-validated ROC AUC: {auc} over {len(m['folds'])} {m['cv']}; gap {m['gap_rows']} rows",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in card['versions'].items())}",
        "",
        "| fold | train rows | test rows | test period | ROC AUC | avg precision |",
        "|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(m["folds"], 1):
        auc_f = f"{f['roc_auc']:.3f}" if "roc_auc" in f else f.get("skipped", "")
        ap = f"{f['average_precision']:.3f}" if "average_precision" in f else ""
        lines.append(
            f"| {i} | {f['train_rows']} | {f['test_rows']} | {f['test_from']} .. {f['test_to']} | {auc_f} | {ap} |"
        )
    top = sorted(card["importance"].items(), key=lambda kv: -kv[1])[:10]
    if top:
        lines += ["", "Most important features (permutation importance, last fold):", ""]
        lines += [f"- {n}: {v:.4f}" for n, v in top]
    lines += ["", f"Features ({len(card['features'])}): {', '.join(card['features'])}", ""]
    return "\n".join(lines)


def read_data(data: str, query: str | None = None) -> pd.DataFrame:
    """History from a CSV/Parquet/JSONL file, or a SQL URL with ``query`` (a table name or SQL)."""
    if "://" in data:
        from flowengine.nodes.sql.client import create_engine, identifier

        sa = require("sqlalchemy", "sql")
        if not query:
            raise ValueError("a SQL URL needs --query (a table name or a SELECT)")
        sql = query if " " in query.strip() else f"SELECT * FROM {identifier(query)}"
        engine = create_engine(data)  # postgresql:// -> psycopg 3, as the SQL nodes use
        try:
            with engine.connect() as conn:
                return pd.read_sql_query(sa.text(sql), conn)
        finally:
            engine.dispose()
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True)
    return pd.read_csv(path)
