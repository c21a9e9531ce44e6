"""The model card: ``<stem>.card.json`` for the predictor, ``<stem>.card.md`` for people.

The JSON card records what a model predicts, from which features and data, how well it did
in time-ordered cross-validation, with which library versions, and what ``predict`` needs to
name the top contributing features (importances and the normal-operation centre and scale).
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from flowengine import __version__

if TYPE_CHECKING:
    from flowengine.nodes.analytics.ml.training import CrossValidation, Target


def card_path(model: Path) -> Path:
    """Where the card of ``model`` lives: ``line3.joblib`` -> ``line3.card.json``."""
    return model.with_name(f"{model.stem}.card.json")


def build_card(
    *,
    name: str,
    kind: str,
    model: Any,
    target: Target,
    features: list[str],
    frame: pd.DataFrame,
    time: str,
    groups: Sequence[str],
    y: pd.Series,
    source: str,
    cv: CrossValidation,
    importance: dict[str, float],
    normal: pd.DataFrame,
) -> dict[str, Any]:
    """The JSON card of a model fitted on ``frame`` (time-ordered) by ``train``."""
    # the order of predict_proba's columns (numeric classes sort as numbers, not as text)
    classes = [_plain(c) for c in getattr(model, "classes_", target.classes)]
    return {
        "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": _task(target, classes),
        "model": {"kind": kind, "estimator": " ".join(repr(model).split())},
        "features": features,
        "data": {
            "source": source,
            "rows": len(frame),
            "from": str(frame[time].iloc[0]),
            "to": str(frame[time].iloc[-1]),
            "positives": int((y != target.negative).sum()),
            "groups": {c: sorted(map(str, frame[c].unique()))[:50] for c in groups},
        },
        "metrics": _metrics(cv),
        "importance": importance,
        "center": {str(n): float(v) for n, v in normal.median().items() if pd.notna(v)},
        "scale": {str(n): float(v) for n, v in _robust_scale(normal).items()},
        "versions": _versions(),
        "classes": classes,
    }


def _task(target: Target, classes: list[Any]) -> dict[str, Any]:
    label, horizon = target.label, target.horizon
    return {
        "label": label,
        "horizon_seconds": horizon,
        "target": (
            f"'{label}' is not {target.negative!r} now or within the next {horizon:g} s"
            if horizon
            else f"'{label}'"
        ),
        "classes": classes,
        "positive": _plain(target.positive),
    }


def _metrics(cv: CrossValidation) -> dict[str, Any]:
    scores = cv.scores
    return {
        "cv": "time-ordered folds (sklearn TimeSeriesSplit), each tested on rows after its training rows",
        "folds": cv.folds,
        "gap_rows": cv.gap,
        "roc_auc_mean": float(np.mean(scores)) if scores else None,
        "roc_auc_std": float(np.std(scores)) if scores else None,
    }


def _versions() -> dict[str, str]:
    import sklearn

    return {
        "flowengine": __version__,
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _robust_scale(x: pd.DataFrame) -> pd.Series:
    """Scale per feature: IQR / 1.349 (a std estimate that ignores episodes), std as fallback."""
    iqr = (x.quantile(0.75) - x.quantile(0.25)) / 1.349
    std = x.std()
    return iqr.where(iqr > 0, std).where(lambda s: s > 0, 1.0).fillna(1.0)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _training(training: dict[str, Any]) -> list[str]:
    """How the model was made, when ``flowengine train`` recorded it: the command, the note."""
    lines = [f"- Made with: `{training['command']}`"] if training.get("command") else []
    return lines + ([f"- How and why: {training['note']}"] if training.get("note") else [])


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
        *_training(card.get("training") or {}),
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
