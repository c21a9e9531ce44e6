"""The Modbus register map and connection settings: plain pydantic models that node configs
and the seed's connector compose (``class ModbusInConfig(NodeConfig, ModbusConfig)``).

The map has the shape Telegraf's ``modbus`` input users know: devices (unit ids) behind one
TCP gateway, each with fields (``name``, ``register``, ``address``, ``type``, ``byte_order``,
``scale``, ``offset``). Everything a device would reject is caught here, with the field named:
overlapping fields, addresses past 65535, a type its register kind cannot hold, a string
without a length.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from flowengine.node import option
from flowengine.nodes.modbus.registers import BIT_KINDS, WIDTH, ByteOrder, DataType, Kind
from flowengine.sqlurl import split_host_port
from flowengine.types import NonFinite

#: The protocol's limits per read request (Modbus application protocol v1.1b3, 6.1 to 6.4).
MAX_REGISTERS, MAX_BITS = 125, 2000
#: Telegraf's spellings of the byte orders (16- and 64-bit) and what they mean here.
ORDER_ALIASES = {
    "AB": "ABCD",
    "BA": "BADC",
    "ABCDEFGH": "ABCD",
    "HGFEDCBA": "DCBA",
    "BADCFEHG": "BADC",
    "GHEFCDAB": "CDAB",
}
SCHEMES = ("modbus", "tcp", "modbus+tcp")
PLURAL = {
    "coil": "coils",
    "discrete": "discrete inputs",
    "holding": "holding registers",
    "input": "input registers",
}


def _order(value: Any) -> Any:
    """Upper-case the byte order and map Telegraf's 16/64-bit spellings to the four names."""
    if isinstance(value, str):
        value = value.strip().upper()
        return ORDER_ALIASES.get(value, value)
    return value


class Field(BaseModel):
    """One value in the device's register map."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: str = option(description="Field name; the `sensor` column unless `sensor` is set.")
    kind: Kind = option(
        "holding",
        alias="register",
        description="`coil`, `discrete` (input), `holding` or `input` (register).",
    )
    address: int = option(ge=0, le=65535, description="0-based address (register 40001 is 0).")
    type: DataType | None = option(
        None,
        description="bool, int16, uint16, int32, uint32, int64, uint64, float32, float64 or "
        "string; default bool on coils/discrete inputs, uint16 on registers.",
    )
    length: int | None = option(
        None, ge=1, le=MAX_REGISTERS, description="Registers of a `string` (2 characters each)."
    )
    byte_order: ByteOrder | None = option(
        None, description="ABCD, DCBA, BADC or CDAB; default the device's `byte_order`."
    )
    scale: float = option(1.0, description="value = raw * scale + offset (numbers only).")
    offset: float = option(0.0, description="Added after `scale`.")
    sensor: str | None = option(None, description="The `sensor` column; default `name`.")
    writable: bool = option(False, description="`modbus_out` may write it (coil/holding only).")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if data.get("type") is None:
                kind = data.get("register", data.get("kind"))
                data["type"] = "bool" if kind in BIT_KINDS else "uint16"
            if "byte_order" in data:
                data["byte_order"] = _order(data["byte_order"])
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Field:
        problem = self.problem()
        if problem:
            raise ValueError(f"field '{self.name}': {problem}")
        return self

    def problem(self) -> str | None:
        """What makes this field impossible to read, or None."""
        bits = self.kind in BIT_KINDS
        if bits != (self.type == "bool"):
            if bits:
                return f"{PLURAL[self.kind]} hold one bit: the type must be bool, not {self.type}"
            return f"type bool needs register coil or discrete, not {self.kind}"
        if self.type == "string" and self.length is None:
            return "type string needs `length` (registers, 2 characters each)"
        if self.type != "string" and self.length is not None:
            return f"`length` is for type string only, not {self.type}"
        if self.type in ("bool", "string") and (self.scale != 1.0 or self.offset != 0.0):
            return f"scale and offset apply to numbers, not to type {self.type}"
        if self.scale == 0:
            return "scale 0 would make every value the offset"
        if self.last > 65535:
            return f"{self.kind} {self.address}..{self.last} runs past address 65535"
        if self.writable and self.kind not in ("coil", "holding"):
            return (
                f"{PLURAL[self.kind]} are read-only in Modbus; only coils and holding "
                "registers can be writable"
            )
        return None

    @property
    def size(self) -> int:
        """Registers (or bits) this field spans."""
        assert self.type is not None  # filled in by _defaults
        return self.length or 1 if self.type == "string" else WIDTH[self.type]

    @property
    def last(self) -> int:
        return self.address + self.size - 1

    @property
    def sensor_name(self) -> str:
        return self.sensor or self.name


class Device(BaseModel):
    """One unit (slave) id behind the gateway, with its fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    device_id: int = option(1, ge=0, le=255, description="Unit (slave) id; 1 for most devices.")
    name: str | None = option(None, description="Device name; the `source` column.")
    byte_order: ByteOrder = option(
        "ABCD", description="Default byte order of this device's multi-register fields."
    )
    fields: list[Field] = option(min_length=1, description="The register map.")

    @field_validator("byte_order", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        return _order(value)

    @model_validator(mode="after")
    def _no_overlap(self) -> Device:
        seen: set[str] = set()
        for f in self.fields:
            if f.name in seen:
                raise ValueError(f"field '{f.name}' is defined twice on device {self.device_id}")
            seen.add(f.name)
        for kind in ("coil", "discrete", "holding", "input"):
            ranged = sorted((f for f in self.fields if f.kind == kind), key=lambda f: f.address)
            for a, b in pairwise(ranged):
                if b.address <= a.last:
                    raise ValueError(
                        f"fields '{a.name}' ({kind} {a.address}..{a.last}) and '{b.name}' "
                        f"({kind} {b.address}..{b.last}) overlap on device {self.device_id}"
                    )
        return self

    def order(self, field: Field) -> ByteOrder:
        """The byte order ``field`` is decoded with."""
        return field.byte_order or self.byte_order


class ModbusConnection(BaseModel):
    """Where the gateway is and the register map (shared by source, sink and seed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str | None = option(
        None,
        description="`modbus://host:port` (or Telegraf's `tcp://host:port`); instead of host/port.",
        examples=["modbus://10.0.3.21:502"],
    )
    host: str | None = option(None, description="Device or gateway host.", examples=["10.0.3.21"])
    port: int = option(502, ge=1, le=65535, description="TCP port.")
    timeout: float = option(2.0, gt=0, description="Seconds per request and for connecting.")
    retries: int = option(
        0, ge=0, le=10, advanced=True, description="Resends of a request that got no answer."
    )
    pause: float = option(
        0.0,
        ge=0,
        description="Seconds to wait after connecting and between two requests "
        "(slow devices, serial gateways; Telegraf's pause_between_requests).",
    )
    devices: list[Device] = option(
        min_length=1, description="Unit ids behind this connection, each with its fields."
    )

    @model_validator(mode="before")
    @classmethod
    def _url(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("url") is not None and data.get("host") is not None:
            raise ValueError("give either `url` or `host`/`port`, not both")
        if isinstance(data, dict) and data.get("url") is None and data.get("host") is None:
            raise ValueError("`host` (or `url: modbus://host:port`) is required")
        return data

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None:
            parse_url(value)
        return value

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str | None) -> str | None:
        if value is not None:
            split_host_port(value)
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> ModbusConnection:
        ids = [d.device_id for d in self.devices]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"device_id {twice[0]} is listed twice: merge its fields")
        return self

    @property
    def endpoint(self) -> tuple[str, int]:
        """``(host, port)`` from ``url`` or ``host``/``port``."""
        if self.url is not None:
            return parse_url(self.url)
        assert self.host is not None  # _url requires one of them
        host, port = split_host_port(self.host)
        return host, port or self.port

    @property
    def address(self) -> str:
        """``host:port`` as the error messages show it."""
        host, port = self.endpoint
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_url(url: str) -> tuple[str, int]:
    """``(host, port)`` of ``modbus://host[:port][/...][?...]`` (port 502 by default)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise ValueError(f"'{url}' must start with modbus:// (e.g. modbus://10.0.3.21:502)")
    if not parts.netloc:
        raise ValueError(f"'{url}' names no device (e.g. modbus://10.0.3.21:502)")
    host, port = split_host_port(parts.netloc)
    return host, port or 502


class ModbusConfig(ModbusConnection):
    """What `modbus_in` and the seed's connector read: the map plus polling and packing."""

    interval: float = option(1.0, gt=0, description="Seconds between two polls of every field.")
    max_gap: int = option(
        10,
        ge=0,
        le=MAX_REGISTERS,
        description="Unused registers one request may read to join two fields (coils and "
        "discrete inputs: 16 bits per register); 0 joins only adjacent fields.",
    )
    max_registers: int = option(
        MAX_REGISTERS,
        ge=1,
        le=MAX_REGISTERS,
        advanced=True,
        description="Registers per read request (125 is the protocol's limit; some devices "
        "take fewer).",
    )
    max_bits: int = option(
        MAX_BITS, ge=1, le=MAX_BITS, advanced=True, description="Coils/discrete inputs per request."
    )
    non_finite: NonFinite = option(
        "bad",
        description="A float that decodes to NaN or +/-Infinity: `bad` keeps it with quality "
        "`bad`, `error` sends it to the error port, `keep` leaves it good.",
    )

    @model_validator(mode="after")
    def _fits(self) -> ModbusConfig:
        for device in self.devices:
            for f in device.fields:
                if f.kind not in BIT_KINDS and f.size > self.max_registers:
                    raise ValueError(
                        f"field '{f.name}': {f.size} registers do not fit one request "
                        f"(max_registers {self.max_registers})"
                    )
        return self
