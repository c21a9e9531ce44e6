"""EtherNet/IP (CIP, Logix) settings: the device, how tag definitions are found, and the tags.

Plain pydantic models that node configs and the seed's connector compose
(``class EnipInConfig(NodeConfig, EnipConfig)``). A tag is written as Logix users write it:
``Line3.Temp``, ``Temps[3]``, ``Temps{10}`` (ten elements from 0), ``Temps[2]{4}``,
``Program:Main.Count``, ``Status.5`` (bit 5 of a DINT).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from flowengine.node import option
from flowengine.sqlurl import split_host_port

#: Port of EtherNet/IP explicit messaging (TCP).
ENIP_PORT = 44818

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INDEX = r"\[\d+(?:,\d+){0,2}\]"
_SEGMENT = rf"{_NAME}(?:{_INDEX})?"
#: ``[Program:Name.]Seg[.Seg...][.bit][{count}]``.
TAG = re.compile(rf"^(?:Program:{_NAME}\.)?{_SEGMENT}(?:\.{_SEGMENT})*(?:\.\d+)?(?:\{{(\d+)\}})?$")
#: A route as pycomm3 writes it: port/link pairs (``1/0``, ``backplane/2/enet/10.0.0.5/bp/0``).
ROUTE = re.compile(r"^[A-Za-z0-9.]+/[A-Za-z0-9.]+(?:/[A-Za-z0-9.]+/[A-Za-z0-9.]+)*$")


class TagSpec(BaseModel):
    """One tag (or array slice) to read, how its rows are named and scaled."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tag: str = option(
        description="Logix tag: `Line3.Temp`, `Temps[3]`, `Temps{10}` (10 elements), "
        "`Program:Main.Count`, `Status.5` (a bit).",
        examples=["Line3.Temp", "Temps{10}"],
    )
    sensor: str | None = option(
        None, description="The `sensor` of its rows (default: the tag); arrays add `[i]`."
    )
    scale: float = option(1.0, description="Numeric values become value * scale + offset.")
    offset: float = option(0.0, description="Added after `scale`.")
    writable: bool = option(False, description="`enip_out` may write it (sink only).")

    @field_validator("tag")
    @classmethod
    def _syntax(cls, value: str) -> str:
        value = value.strip()
        match = TAG.match(value)
        if match is None:
            raise ValueError(
                f"'{value}' is not a Logix tag (e.g. Line3.Temp, Temps[3], Temps{{10}}, "
                "Program:Main.Count)"
            )
        if match.group(1) is not None and int(match.group(1)) < 1:
            raise ValueError(f"'{value}': an element count {{n}} must be at least 1")
        return value

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("scale must not be 0")
        return value

    @property
    def plc_tag(self) -> str:
        """The tag without its element count: what the controller resolves."""
        return self.tag.partition("{")[0]

    @property
    def count(self) -> int | None:
        """Elements asked for with ``{n}``; None for a single value (or a whole structure)."""
        match = TAG.match(self.tag)
        return int(match.group(1)) if match and match.group(1) else None

    @property
    def request(self) -> str:
        """The tag as pycomm3 reads it (``Temps{10}``)."""
        return self.tag

    @property
    def name(self) -> str:
        """The sensor name of a single value, or the stem elements are numbered under."""
        if self.sensor:
            return self.sensor
        return stem(self.plc_tag)[0] if self.count is not None else self.plc_tag

    def elements(self) -> list[tuple[str, str]]:
        """``(sensor, element tag)`` per element of a ``{n}`` slice, in order."""
        base, first = stem(self.plc_tag)
        prefix, last = first[:-1], first[-1] if first else 0
        out = []
        for k in range(self.count or 1):
            index = ",".join(map(str, [*prefix, last + k]))
            out.append((f"{self.name}[{index}]", f"{base}[{index}]"))
        return out


def stem(tag: str) -> tuple[str, list[int]]:
    """``("Temps", [2])`` of ``Temps[2]``; ``("Temps", [])`` of ``Temps`` (the last segment's
    index only: ``A[1].B[2]`` gives ``("A[1].B", [2])``)."""
    if not tag.endswith("]"):
        return tag, []
    head, _, index = tag[:-1].rpartition("[")
    return head, [int(i) for i in index.split(",")]


def _tags_before(value: Any) -> Any:
    """Plain strings in ``tags`` stand for ``{tag: ...}``."""
    if isinstance(value, list):
        return [{"tag": v} if isinstance(v, str) else v for v in value]
    return value


class EnipConnection(BaseModel):
    """How to reach the controller (shared by source, sink, browse and the seed's connector)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = option(description="Controller (or EtherNet/IP module) address.")
    port: int = option(ENIP_PORT, ge=1, le=65535, description="EtherNet/IP TCP port.")
    slot: int | None = option(
        None,
        ge=0,
        description="CPU slot in a ControlLogix backplane (default 0); leave empty with `route`.",
    )
    route: str | None = option(
        None,
        advanced=True,
        description="CIP route instead of `slot`: port/link pairs, e.g. `backplane/2/enet/"
        "10.0.0.5/backplane/0` or `1/0`.",
    )
    timeout: float = option(5.0, gt=0, description="Seconds per request (socket timeout).")
    tag_list: Literal["auto", "upload", "probe"] = option(
        "auto",
        description="How tag types are learnt: `upload` the controller's tag list (needed for "
        "whole UDTs), `probe` each tag with a plain Read Tag (simulators and devices without "
        "a tag list), `auto` tries the upload and falls back to probing.",
    )
    tags: list[TagSpec] = option(default_factory=list, description="Tags (see `enip_in`).")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        host, port = split_host_port(value)
        if port is not None:
            raise ValueError(f"'{value}': give the port in `port`, not in `host`")
        return host

    @field_validator("route")
    @classmethod
    def _route(cls, value: str | None) -> str | None:
        if value is not None and not ROUTE.match(value.strip()):
            raise ValueError(f"'{value}' is not a CIP route of port/link pairs (e.g. 1/0)")
        return value.strip() if value is not None else None

    @field_validator("tags", mode="before")
    @classmethod
    def _plain_tags(cls, value: Any) -> Any:
        return _tags_before(value)

    @model_validator(mode="after")
    def _slot_or_route(self) -> EnipConnection:
        if self.slot is not None and self.route is not None:
            raise ValueError("give either `slot` or `route`, not both")
        return self

    @property
    def address(self) -> str:
        """``host:port`` as error messages name the device."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def path(self) -> str:
        """The connection path pycomm3 opens: ``host:port[/slot | /route]``."""
        if self.route:
            return f"{self.address}/{self.route}"
        if self.slot is not None:
            return f"{self.address}/{self.slot}"
        return self.address


class EnipConfig(EnipConnection):
    """The connection plus the tags to poll."""

    tags: list[TagSpec] = option(
        description="Tags to read each poll, several per request: strings (`Line3.Temp`) or "
        "`{tag, sensor, scale, offset}`. `Temps{10}` gives rows `Temps[0]`..`Temps[9]`; a "
        "structure read whole gives one row per member (`Line3.Temp`).",
        examples=[["Line3.Temp", {"tag": "Temps{10}", "sensor": "zone", "scale": 0.1}]],
    )
    poll_interval: float = option(1.0, gt=0, description="Seconds between polls.")

    @field_validator("tags")
    @classmethod
    def _not_empty(cls, value: list[TagSpec]) -> list[TagSpec]:
        if not value:
            raise ValueError("list at least one tag")
        return value
