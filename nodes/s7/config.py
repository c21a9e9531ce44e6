"""S7 connection and tag settings: plain pydantic models that node configs and the seed's
connector compose (``class S7InConfig(NodeConfig, S7Config)``).

Every tag's address is parsed when the config is validated, so a bad address is a validation
error at its line that names the tag and what is wrong, never a failure at the first poll.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator, model_validator

from flowengine.node import option
from flowengine.nodes.s7.address import Address, parse_address

#: S7 connection types, as the remote TSAP's high byte.
CONNECTION_TYPES = {"PG": 1, "OP": 2, "S7Basic": 3}


def parse_tsap(value: str | int) -> int:
    """A TSAP from ``0x0102``, ``01.02``, ``01:02`` (hex bytes, as TIA and NetPro show them)
    or a plain number."""
    if isinstance(value, int):
        tsap = value
    else:
        text = value.strip().lower()
        try:
            if "." in text or ":" in text:
                high, _, low = text.replace(":", ".").partition(".")
                tsap = int(high, 16) << 8 | int(low, 16)
            else:
                tsap = int(text, 0)
        except ValueError:
            raise ValueError(f"'{value}' is not a TSAP (e.g. 01.00, 0x0102 or 258)") from None
    if not 0 <= tsap <= 0xFFFF:
        raise ValueError(f"TSAP {value!r} is out of range 0..0xFFFF")
    return tsap


class S7Tag(BaseModel):
    """One value on the PLC: where it is, what type it has and what the rows call it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    address: str = option(
        description="Address as S7 users write it: `DB10.DBD4`, `DB10.DBX0.1`, `MW20`, `I0.0`, "
        "`Q0.1`, or the Node-RED/Telegraf spelling `DB10,REAL4` / `DB10.R4`.",
        examples=["DB10.DBD4", "DB10.DBX0.1", "MW20", "DB10,REAL4"],
    )
    type: str | None = option(
        None,
        description="Data type when the address does not say it: BOOL, BYTE, SINT, USINT, CHAR, "
        "INT, UINT, WORD, DINT, UDINT, DWORD, REAL, LINT, ULINT, LWORD, LREAL, STRING[n]. "
        "Default: the address's (DBW/MW: INT, DBD/MD: REAL, DBB/MB: BYTE, DBX/M0.0: BOOL).",
        examples=["REAL", "DINT", "STRING[20]"],
    )
    sensor: str | None = option(None, description="The `sensor` column (default: the address).")
    scale: float | None = option(None, description="Reads give value * scale + offset.")
    offset: float | None = option(None, description="Added after `scale`.")
    writable: bool = option(False, description="`s7_out` may write this tag.")
    _parsed: Address | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _parse(self) -> S7Tag:
        try:
            self._parsed = parse_address(self.address, self.type)
        except ValueError as exc:
            named = f"tag '{self.sensor}': " if self.sensor else ""
            raise ValueError(f"{named}{exc}") from None
        if self._parsed.type in ("BOOL", "CHAR", "STRING") and (self.scale or self.offset):
            raise ValueError(
                f"tag '{self.name}': scale/offset apply to numbers, not a {self._parsed.type_name}"
            )
        if self.scale == 0:
            raise ValueError(f"tag '{self.name}': scale 0 would make every value the offset")
        return self

    @property
    def parsed(self) -> Address:
        """The parsed address (set by validation)."""
        assert self._parsed is not None
        return self._parsed

    @property
    def name(self) -> str:
        """The sensor name of this tag's rows."""
        return self.sensor or self.address.strip()

    def scaled(self, value: Any) -> Any:
        """A read value with ``scale`` and ``offset`` applied (numbers only)."""
        if self.scale is None and self.offset is None:
            return value
        return value * (1.0 if self.scale is None else self.scale) + (self.offset or 0.0)

    def unscaled(self, value: Any) -> Any:
        """The raw value to write for an engineering value (the inverse of :meth:`scaled`)."""
        if self.scale is None and self.offset is None:
            return value
        return (float(value) - (self.offset or 0.0)) / (1.0 if self.scale is None else self.scale)


class S7Connection(BaseModel):
    """How to reach the PLC (shared by source, sink and the seed's connector)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = option(description="PLC host name or IP address.", examples=["192.168.0.10"])
    port: int = option(102, ge=1, le=65535, description="ISO-on-TCP port.")
    rack: int = option(0, ge=0, le=7, description="CPU rack (S7-300/400: 0).")
    slot: int = option(
        1, ge=0, le=31, description="CPU slot (S7-300: 2, S7-400: per rack, S7-1200/1500: 1)."
    )
    connection_type: Literal["PG", "OP", "S7Basic"] = option(
        "PG", advanced=True, description="Connection resource the PLC assigns (rack/slot mode)."
    )
    local_tsap: str | int | None = option(
        None,
        advanced=True,
        description="Local TSAP (LOGO!, S7-200, CP connections), e.g. `01.00`; with "
        "`remote_tsap` it replaces rack/slot.",
    )
    remote_tsap: str | int | None = option(
        None, advanced=True, description="Remote TSAP, e.g. `01.02` or `0x0201`."
    )
    timeout: float = option(4.0, gt=0, advanced=True, description="Seconds per request.")
    pdu_size: int = option(
        480,
        ge=240,
        le=960,
        advanced=True,
        description="PDU size to ask for; the PLC may grant less (the negotiated size is used).",
    )
    tags: list[S7Tag] = option(default_factory=list, description="The tags to read or write.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value.strip() or "/" in value or " " in value.strip():
            raise ValueError(f"'{value}' is not a host name or address (e.g. 192.168.0.10)")
        return value.strip()

    @field_validator("local_tsap", "remote_tsap")
    @classmethod
    def _tsap(cls, value: str | int | None) -> int | None:
        return None if value is None else parse_tsap(value)

    @model_validator(mode="after")
    def _tsaps_and_names(self) -> S7Connection:
        if (self.local_tsap is None) != (self.remote_tsap is None):
            raise ValueError("give both local_tsap and remote_tsap, or neither (rack/slot)")
        seen: dict[str, str] = {}
        for tag in self.tags:
            if tag.name in seen:
                raise ValueError(
                    f"two tags are named '{tag.name}' ({seen[tag.name]}, {tag.address}): "
                    "give each a distinct `sensor`"
                )
            seen[tag.name] = tag.address
        return self

    @property
    def where(self) -> str:
        """``host:port`` as messages show it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def remote(self) -> tuple[int, int, int]:
        """(connection type, rack, slot) the client connects with; from ``remote_tsap`` when
        TSAPs are given (its high byte is the type, its low byte rack * 32 + slot)."""
        if isinstance(self.remote_tsap, int):
            tsap = self.remote_tsap
            return tsap >> 8, (tsap & 0xFF) >> 5, tsap & 0x1F
        return CONNECTION_TYPES[self.connection_type], self.rack, self.slot


class S7Config(S7Connection):
    """Connection plus polling: what `s7_in` and the seed's `S7Connector` read."""

    tags: list[S7Tag] = option(
        description="Tags to read each poll: `{address, type?, sensor?, scale?, offset?}`.",
        examples=[[{"address": "DB10.DBD4", "sensor": "furnace_temp"}, {"address": "M0.1"}]],
    )
    poll_interval: float = option(1.0, gt=0, description="Seconds between two reads.")
    max_gap: int = option(
        16,
        ge=-1,
        le=256,
        advanced=True,
        description="Tags at most this many bytes apart in one area are read as one block "
        "(a gap costs its bytes; a separate item costs 12 request + 4 reply bytes). "
        "-1 merges only overlapping tags.",
    )
    max_items: int = option(
        20, ge=1, le=64, advanced=True, description="Blocks per read request (S7-300: 20)."
    )

    @field_validator("tags")
    @classmethod
    def _not_empty(cls, value: list[S7Tag]) -> list[S7Tag]:
        if not value:
            raise ValueError("list at least one tag")
        return value
