"""``flowengine train``: fit a defect model on history and write it with its model card."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from flowengine.nodes.analytics import ml
from flowengine.nodes.analytics.windows import parse_duration


def _seconds(text: str) -> float:
    try:
        return parse_duration(text) / 1e9
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(f"not a duration: {text!r} ({exc})") from None


def _command(params: dict[str, Any]) -> str:
    """This run as one command with every setting spelled out (a SQL URL masked as in the
    card's source), so that the card says how to make the model again."""
    data = params["data"]
    words = [
        "flowengine",
        "train",
        "--data",
        data.split("://")[0] + "://..." if "://" in data else data,
    ]
    flags = {"kind": "--model", "time_col": "--time"}
    for key, value in params.items():
        if key in ("data", "note", "out") or value in ("", None, ()):
            continue
        for item in value if isinstance(value, tuple) else (value,):
            words += [flags.get(key, f"--{key}"), str(item)]
    return shlex.join([*words, "--out", str(params["out"])])


@click.command()
@click.option(
    "--data",
    required=True,
    help="History: a CSV, JSONL or Parquet file, or a SQL URL (sqlite:///h.db, "
    "postgresql+psycopg://...) with --query.",
)
@click.option("--query", help="With a SQL URL: a table name or a SELECT statement.")
@click.option("--label", required=True, help="The label column, e.g. defect.")
@click.option(
    "--features",
    multiple=True,
    help="Feature columns (repeat or comma-separate); default every numeric column but the "
    "label, times and --by columns.",
)
@click.option(
    "--horizon",
    default="0s",
    show_default=True,
    help="Predict a defect this far ahead: a row is positive when the label is on now or "
    "within the horizon (per --by group), e.g. 30s.",
)
@click.option(
    "--model",
    "kind",
    type=click.Choice(ml.MODELS),
    default="gradient_boosting",
    show_default=True,
)
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20))
@click.option("--time", "time_col", default="timestamp", show_default=True)
@click.option("--by", default="line", show_default=True, help="Group columns, comma-separated.")
@click.option("--name", default="", help="Model name in the card and version (default: file stem).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--note",
    default="",
    help="How the history was made and why these settings (the flow that made it, say), "
    "kept in the card with this command.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Model file: .joblib, .skops (flowengine[skops]) or .onnx (flowengine[onnx]); the "
    "card goes beside it as <stem>.card.json and <stem>.card.md.",
)
def train(
    data: str,
    query: str | None,
    label: str,
    features: tuple[str, ...],
    horizon: str,
    kind: str,
    folds: int,
    time_col: str,
    by: str,
    name: str,
    seed: int,
    note: str,
    out: Path,
) -> None:
    """Train a defect model on history and report time-ordered cross-validated ROC AUC."""
    if not out.name.endswith(ml.SUFFIXES):
        raise click.BadParameter(f"must end in {', '.join(ml.SUFFIXES)}", param_hint="--out")
    names = [f.strip() for item in features for f in item.split(",") if f.strip()] or None
    try:
        frame = ml.read_data(data, query)
        click.echo(f"read {len(frame)} rows, {len(frame.columns)} columns from {data}", err=True)
        trained = ml.train(
            frame,
            label,
            features=names,
            horizon=_seconds(horizon),
            kind=kind,
            folds=folds,
            time=time_col,
            by=[b.strip() for b in by.split(",") if b.strip()],
            source=data if "://" not in data else data.split("://")[0] + "://...",
            name=name or out.stem,
            seed=seed,
        )
        ctx = click.get_current_context()  # the options in their declared order
        command = _command({p.name: ctx.params[p.name] for p in ctx.command.params if p.name})
        trained.card["training"] = {"command": command, "note": note}
        paths = ml.save(trained, out)
    except (KeyError, ValueError, FileNotFoundError, ImportError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        click.echo(f"error: {message}", err=True)
        raise SystemExit(2) from None
    card = trained.card
    m = card["metrics"]
    for i, fold in enumerate(m["folds"], 1):
        auc = f"{fold['roc_auc']:.3f}" if "roc_auc" in fold else fold.get("skipped", "")
        click.echo(
            f"fold {i}: train {fold['train_rows']:>6} rows, test {fold['test_rows']:>6} "
            f"({fold['test_from']} .. {fold['test_to']}): ROC AUC {auc}"
        )
    if m["roc_auc_mean"] is not None:
        click.echo(f"ROC AUC (time-ordered CV): {m['roc_auc_mean']:.3f} ± {m['roc_auc_std']:.3f}")
    click.echo(f"features: {len(card['features'])}; positives: {card['data']['positives']}")
    for path in paths:
        click.echo(f"wrote {path}")
