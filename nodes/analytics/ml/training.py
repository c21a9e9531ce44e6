"""Training a defect model: the horizon label, time-ordered cross-validation, importances.

``train`` runs the steps in order: order the rows by time, build the target, pick the
features, cross-validate on time-ordered folds, fit on everything, measure permutation
importance on the last fold, and describe it all in a card (:mod:`.card`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flowengine.nodes.analytics.ml.card import build_card
from flowengine.nodes.analytics.ml.load import negative_class
from flowengine.nodes.analytics.windows import to_ns

MODELS = ("gradient_boosting", "random_forest", "logistic")


@dataclass
class Trained:
    """A fitted estimator and its card (what ``save`` writes)."""

    model: Any
    card: dict[str, Any]


@dataclass(frozen=True)
class Target:
    """What is learned: the label column, its horizon, its classes and the normal one."""

    label: str
    horizon: float
    classes: list[Any]
    negative: Any
    positive: Any = None  # the defect class of a binary label

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2


@dataclass
class CrossValidation:
    """Per-fold rows for the card, their ROC AUCs, and the last fold to measure importance on."""

    gap: int
    folds: list[dict[str, Any]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    last: tuple[pd.DataFrame, pd.Series, Any] | None = None


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
    neg = negative_class(sorted(y.dropna().unique().tolist(), key=str))
    t, values = to_ns(frame[time]), y.to_numpy()
    out = np.empty(len(frame), dtype=object)
    groups = frame.groupby(list(by), sort=False).indices if by else {None: np.arange(len(frame))}
    for idx in groups.values():
        order = idx[np.argsort(t[idx], kind="stable")]
        out[order] = _next_defect(t[order], values[order], neg, horizon * 1e9)
    result = pd.Series(out, index=frame.index, name=label)
    return result.astype(y.dtype) if y.dtype.kind in "biuf" else result


def _next_defect(t: np.ndarray, y: np.ndarray, neg: Any, within: float) -> np.ndarray:
    """Per time-ordered row, the class of the next bad row at or after it if that starts no
    more than ``within`` ns later, else ``neg``; found scanning backwards."""
    bad = np.array([v != neg and not pd.isna(v) for v in y])
    nxt_t = np.full(len(t), np.iinfo(np.int64).max)
    nxt_v = np.empty(len(t), dtype=object)
    cur_t, cur_v = np.iinfo(np.int64).max, neg
    for i in range(len(t) - 1, -1, -1):
        if bad[i]:
            cur_t, cur_v = t[i], y[i]
        nxt_t[i], nxt_v[i] = cur_t, cur_v
    return np.where((nxt_t - t) <= within, nxt_v, neg)


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

    groups = [c for c in by if c in frame.columns]
    frame = _time_ordered(frame, label, time, groups)
    y = horizon_target(frame, label, horizon, time=time, by=groups)
    names = _feature_names(frame, label, groups, features)
    x = frame[names].astype(float)
    target = _target(label, horizon, y)
    estimator = make_estimator(kind, seed)
    gap = _gap(frame[time], horizon, folds)
    cv = _cross_validate(estimator, x, y, frame[time], target, folds, gap)
    model = clone(estimator).fit(x, y)
    card = build_card(
        name=name or "model",
        kind=kind,
        model=model,
        target=target,
        features=names,
        frame=frame,
        time=time,
        groups=groups,
        y=y,
        source=source,
        cv=cv,
        importance=_importance(cv, names, target, seed),
        normal=x[(y == target.negative).to_numpy()] if target.negative is not None else x,
    )
    return Trained(model, card)


def _time_ordered(
    frame: pd.DataFrame, label: str, time: str, groups: Sequence[str] = ()
) -> pd.DataFrame:
    """The labelled rows of ``frame`` sorted by UTC time, then group (rows of several lines
    arrive interleaved in any order: the model must not depend on it); names a missing label
    or time."""
    if label not in frame.columns:
        raise KeyError(
            f"the data has no label column '{label}' (columns: {', '.join(frame.columns[:20])})"
        )
    if time not in frame.columns:
        raise KeyError(f"the data has no time column '{time}'")
    frame = frame.dropna(subset=[label])
    frame = frame.assign(**{time: pd.to_datetime(frame[time], utc=True)})
    return frame.sort_values([time, *groups], kind="stable").reset_index(drop=True)


def _feature_names(
    frame: pd.DataFrame, label: str, groups: list[str], features: Sequence[str] | None
) -> list[str]:
    """The chosen features (all present) or the numeric defaults."""
    names = list(features) if features else default_features(frame, label, groups)
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise KeyError(f"the data lacks feature column(s): {', '.join(missing)}")
    return names


def _target(label: str, horizon: float, y: pd.Series) -> Target:
    """The classes of ``y`` (at least two) and which is normal / the defect."""
    classes = sorted(y.unique().tolist(), key=str)
    if len(classes) < 2:
        raise ValueError(f"label '{label}' has one class only ({classes[0]!r}): nothing to learn")
    neg = negative_class(classes)
    positive = next(c for c in classes if c != neg) if len(classes) == 2 else None
    return Target(label, horizon, classes, neg, positive)


def _gap(times: pd.Series, horizon: float, folds: int) -> int:
    """Rows left out between train and test rows: as long as the horizon (label leakage),
    at most a fold's share of the rows. Several groups (lines) share each time, so the
    horizon's times count as many rows as there are rows per time."""
    distinct = times.drop_duplicates()
    step = pd.Timedelta(distinct.diff().median())
    gap = 0
    if horizon > 0 and pd.notna(step):
        per_time = len(times) / max(len(distinct), 1)
        gap = int(np.ceil(np.ceil(horizon / max(step.total_seconds(), 1e-9)) * per_time))
    return min(gap, len(times) // (folds + 2))


def roc_auc(target: Target, classes: Sequence[Any], y: pd.Series, proba: np.ndarray) -> float:
    """ROC AUC of probabilities whose columns are ``classes``: of the defect class when binary,
    one-vs-rest otherwise."""
    from sklearn.metrics import roc_auc_score

    if target.binary:
        p = proba[:, list(classes).index(target.positive)]
        return float(roc_auc_score(y == target.positive, p))
    return float(roc_auc_score(y, proba, multi_class="ovr", labels=classes))


def _cross_validate(
    estimator: Any,
    x: pd.DataFrame,
    y: pd.Series,
    times: pd.Series,
    target: Target,
    folds: int,
    gap: int,
) -> CrossValidation:
    """Fit a clone per time-ordered fold and score it on the rows after its training rows."""
    from sklearn.base import clone
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import TimeSeriesSplit

    cv = CrossValidation(gap)
    splitter = TimeSeriesSplit(n_splits=folds, gap=gap)
    for train_idx, test_idx in splitter.split(x):
        ytr, yte = y.iloc[train_idx], y.iloc[test_idx]
        row: dict[str, Any] = {
            "train_rows": len(train_idx),
            "test_rows": len(test_idx),
            "test_from": str(times.iloc[test_idx[0]]),
            "test_to": str(times.iloc[test_idx[-1]]),
        }
        cv.folds.append(row)
        if ytr.nunique() < 2 or yte.nunique() < 2:
            row["skipped"] = "one class only in this fold"
            continue
        model = clone(estimator).fit(x.iloc[train_idx], ytr)
        proba = model.predict_proba(x.iloc[test_idx])
        row["roc_auc"] = roc_auc(target, model.classes_, yte, proba)
        if target.binary:
            p = proba[:, list(model.classes_).index(target.positive)]
            row["average_precision"] = float(average_precision_score(yte == target.positive, p))
        cv.scores.append(row["roc_auc"])
        cv.last = (x.iloc[test_idx], yte, model)
    return cv


def _importance(
    cv: CrossValidation, names: list[str], target: Target, seed: int
) -> dict[str, float]:
    """Permutation importance (ROC AUC lost) of each feature on the last scored fold."""
    if cv.last is None:
        return {}
    from sklearn.inspection import permutation_importance

    xt, yt, fold_model = cv.last

    def scoring(est: Any, xs: pd.DataFrame, ys: pd.Series) -> float:
        return roc_auc(target, est.classes_, ys, est.predict_proba(xs))

    imp = permutation_importance(
        fold_model, xt, yt, scoring=scoring, n_repeats=3, random_state=seed
    )
    return {n: round(float(v), 6) for n, v in zip(names, imp.importances_mean, strict=True)}
