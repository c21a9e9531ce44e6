"""Schema: check incoming batches against expected columns, types, ranges and quality values.

Rows that pass go on; each violating row goes to `error` with a `rule` column naming the first
rule it failed. The type rules live in :mod:`flowengine.nodes.basic.schemacheck`.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import numpy as np
import pandas as pd
from pydantic import field_validator, model_validator

from flowengine.node import NodeConfig, Transform, option
from flowengine.nodes.basic.schemacheck import Dtype, Verdicts, check_type, number, text
from flowengine.types import Batch, Result

#: Sensor names whose rule was looked up; beyond this the cache starts over.
_CACHE_LIMIT = 100_000


class ColumnSpec(NodeConfig):
    """What one column must hold."""

    dtype: Dtype | None = option(None, description="float, int, str, bool or datetime; unset: any.")
    required: bool = option(True, description="A batch without this column goes to `error`.")
    nullable: bool = option(False, description="Null values (None, NaN, NaT) are allowed.")


class SensorSpec(NodeConfig):
    """The range and unit of one sensor (or of every sensor a pattern matches)."""

    min: float | None = option(None, allow_inf_nan=False, description="Lowest allowed value.")
    max: float | None = option(None, allow_inf_nan=False, description="Highest allowed value.")
    unit: str | None = option(
        None, description="The unit rows must name when there is a `unit` column."
    )

    @model_validator(mode="after")
    def _order(self) -> SensorSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {number(self.min)} > max {number(self.max)}")
        return self


class SchemaConfig(NodeConfig):
    columns: dict[str, ColumnSpec] = option(
        {},
        description="Column -> {dtype, required (true), nullable (false)}; a dtype alone may "
        "be written as the value (`value: float`).",
        examples=[{"timestamp": {"dtype": "datetime"}, "sensor": "str", "value": "float"}],
    )
    strict: bool = option(False, description="Columns not in `columns` send the batch to `error`.")
    sensors: dict[str, SensorSpec] = option(
        {},
        description="Sensor name or glob pattern (`roll_*`) -> {min, max, unit}, checked on "
        "`column` by the `key` column (long format); an exact name wins over patterns.",
        examples=[{"furnace_temp": {"min": 0, "max": 1500, "unit": "degC"}}],
    )
    quality: list[str] | None = option(
        None,
        min_length=1,
        description="Allowed values of the `quality` column (when present).",
        examples=[["good", "uncertain"]],
    )
    coerce: bool = option(
        True,
        description="Cast values to the declared dtype (text '3.2' to 3.2); values that cannot "
        "be cast are violations. Off: a value of another type is a violation.",
    )
    key: str = option("sensor", description="Column naming the sensor, for `sensors`.")
    column: str = option("value", description="Column the `sensors` ranges apply to.")

    @field_validator("columns", mode="before")
    @classmethod
    def _short(cls, columns: Any) -> Any:
        if isinstance(columns, dict):
            return {k: {"dtype": v} if isinstance(v, str) else v for k, v in columns.items()}
        return columns

    @model_validator(mode="after")
    def _strict(self) -> SchemaConfig:
        if self.strict and not self.columns:
            raise ValueError("'strict' allows only the columns in 'columns': list them")
        return self


class Schema(Transform[SchemaConfig]):
    """Pass conforming rows on `out`; violating ones to `error` with the failed `rule`.

    Counters: `schema_violations` (rows sent to `error`) and one per rule name (`null`,
    `dtype`, `not_finite`, `quality`, `unit`, `not_number`, `below_min`, `above_max`,
    `missing_column`, `unexpected_column`).
    """

    icon = "rule"

    async def start(self) -> None:
        self._specs: dict[Any, SensorSpec | None] = {}

    def process(self, batch: Batch) -> Result:
        frame = batch.frame
        if frame.empty:
            return None
        problem = self._columns_problem(frame)
        if problem is not None:
            rule, message = problem
            return self._reject(batch, frame.assign(rule=message), {rule: len(frame)}, message)
        verdicts = Verdicts(len(frame))
        cast = self._check_columns(frame, verdicts)
        self._check_quality(frame, verdicts)
        if self.config.sensors:
            self._check_sensors(frame, cast.get(self.config.column), verdicts)
        good = frame.assign(**cast) if cast else frame
        ok = verdicts.ok
        if ok.all():
            return good
        bad = frame[~ok].assign(rule=verdicts.text[~ok])
        result = self._reject(batch, bad, verdicts.counts(), str(bad["rule"].iloc[0]))
        return {"out": good[ok], **result}

    def _reject(
        self, batch: Batch, bad: pd.DataFrame, counts: dict[str, int], first: str
    ) -> dict[str, Batch]:
        """Count the violations and wrap the violating rows for the `error` port."""
        rows = len(bad)
        self.ctx.count("schema_violations", rows)
        for rule, n in counts.items():
            self.ctx.count(rule, n)
        summary = f"{rows} row(s) violate the schema; first: {first}"
        self.ctx.error(summary, rows)
        return {"error": Batch(bad, batch.topic, self.ctx.node_id, batch.created, error=summary)}

    def _columns_problem(self, frame: pd.DataFrame) -> tuple[str, str] | None:
        """A rule the whole batch fails: a required column missing, or (strict) an extra one."""
        cfg = self.config
        needed = [name for name, spec in cfg.columns.items() if spec.required]
        if cfg.sensors:
            needed += [cfg.key, cfg.column]
        missing = [name for name in dict.fromkeys(needed) if name not in frame]
        if missing:
            return "missing_column", f"missing column {', '.join(missing)}"
        if cfg.strict:
            extra = [str(name) for name in frame.columns if name not in cfg.columns]
            if extra:
                return "unexpected_column", f"unexpected column {', '.join(extra)}"
        return None

    def _check_columns(self, frame: pd.DataFrame, verdicts: Verdicts) -> dict[str, pd.Series]:
        """Nulls, then types, then (floats) finiteness; the columns ``coerce`` cast."""
        cast: dict[str, pd.Series] = {}
        for name, spec in self.config.columns.items():
            if name not in frame:
                continue  # not required (checked before)
            col = frame[name]
            if not spec.nullable:
                verdicts.add("null", col.isna().to_numpy(), f"null in column {name}")
            if spec.dtype is None:
                continue
            bad, converted = check_type(col, spec.dtype, self.config.coerce)
            message = "value " + text(col[bad]) + f" in column {name} is not {spec.dtype}"
            verdicts.add("dtype", bad, message)
            if converted is not None:
                cast[name] = converted
            if spec.dtype == "float":
                odd = np.isinf(_numbers(converted if converted is not None else col))
                message = "value " + text(col[odd]) + f" in column {name} is not finite"
                verdicts.add("not_finite", odd, message)
        return cast

    def _check_quality(self, frame: pd.DataFrame, verdicts: Verdicts) -> None:
        allowed = self.config.quality
        if allowed is None or "quality" not in frame:
            return
        quality = frame["quality"]
        spec = self.config.columns.get("quality")
        ok = quality.isin(allowed).to_numpy()
        if spec is not None and spec.nullable:
            ok = ok | quality.isna().to_numpy()
        wrong = quality[~ok]
        named = "quality " + text(wrong) + " not allowed"
        verdicts.add("quality", ~ok, np.where(wrong.isna(), "null quality not allowed", named))

    def _spec(self, name: object) -> SensorSpec | None:
        """The rule of sensor ``name``: its exact entry, else the first pattern matching it."""
        if name in self._specs:
            return self._specs[name]
        if len(self._specs) >= _CACHE_LIMIT:
            self._specs.clear()
        label, sensors = str(name), self.config.sensors
        spec = sensors.get(label)
        if spec is None:
            spec = next((s for p, s in sensors.items() if fnmatch.fnmatchcase(label, p)), None)
        self._specs[name] = spec
        return spec

    def _check_sensors(
        self, frame: pd.DataFrame, cast: pd.Series | None, verdicts: Verdicts
    ) -> None:
        """Units, then ranges, per sensor: a lookup per distinct name, the checks per column."""
        cfg = self.config
        names = frame[cfg.key]
        codes, uniques = pd.factorize(names)
        specs = [self._spec(name) for name in uniques] + [None]  # the last: rows without a name
        pick = np.where(codes < 0, len(specs) - 1, codes)
        labels = np.array([f" for sensor {name}" for name in uniques] + [""], dtype=object)
        if "unit" in frame and any(s is not None and s.unit is not None for s in specs):
            want = np.array([s and s.unit for s in specs], dtype=object)[pick]
            units = frame["unit"]
            wrong = pd.notna(want) & units.notna().to_numpy() & (units.to_numpy() != want)
            message = "unit " + text(units[wrong], quote=False) + " is not " + want[wrong]
            verdicts.add("unit", wrong, message + labels[pick[wrong]])
        raw = frame[cfg.column]
        values = _numbers(raw if cast is None else cast)
        low = np.array([np.nan if s is None or s.min is None else s.min for s in specs])
        high = np.array([np.nan if s is None or s.max is None else s.max for s in specs])
        ranged = ~(np.isnan(low) & np.isnan(high))[pick]
        odd = ranged & raw.notna().to_numpy() & np.isnan(values)
        message = "value " + text(raw[odd]) + " is not a number"
        verdicts.add("not_number", odd, message + labels[pick[odd]])
        for rule, limits in (("below_min", low), ("above_max", high)):
            with np.errstate(invalid="ignore"):
                mask = values < limits[pick] if rule == "below_min" else values > limits[pick]
            shown = np.array(list(map(repr, values[mask].tolist())), dtype=object)
            limit = np.array([number(x) for x in limits], dtype=object)
            message = "value " + shown + f" {rule.replace('_', ' ')} " + limit[pick[mask]]
            verdicts.add(rule, mask, message + labels[pick[mask]])


def _numbers(col: pd.Series) -> np.ndarray:
    """A column as floats for range checks: what is not a number (True too) is NaN."""
    if pd.api.types.is_bool_dtype(col.dtype):
        return np.full(len(col), np.nan)
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(col.astype(object), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
