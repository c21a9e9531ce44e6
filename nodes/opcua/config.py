"""OPC UA connection and subscription settings: plain pydantic models that node configs and
the seed's connector compose (``class OpcuaInConfig(NodeConfig, OpcuaConfig)``).

They forbid unknown keys and are frozen like ``NodeConfig``, so the seed's dict config is checked
the same way as a node's.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, field_validator, model_validator

from flowengine.masking import mask_url_password
from flowengine.node import option
from flowengine.sqlurl import split_host_port
from flowengine.types import NonFinite

#: Monitored items created per CreateMonitoredItems request.
SUBSCRIBE_BATCH = 500
#: Subscription values held between two emits before the oldest are dropped.
MAX_BUFFER = 100_000
#: Server queue per monitored item: above 1, so a server marks lost values (Overflow bit).
QUEUE_SIZE = 10
#: Publish requests in flight per subscription.
PUBLISH_REQUESTS = 4
#: What ``opcua_in`` does with a NaN or +/-Infinity value (the ``non_finite`` of mqtt_in/rest_in).


def check_server_url(url: str) -> str:
    """``url`` if it is ``opc.tcp://host:port[/path]`` (asyncua needs the port), else a
    ValueError that says what is wrong."""
    shown = mask_url_password(url)
    if not url.lower().startswith("opc.tcp://"):
        raise ValueError(f"'{shown}' must start with opc.tcp:// (e.g. opc.tcp://plc:4840)")
    netloc = urlsplit(url).netloc.rpartition("@")[2]  # user:password@ is allowed
    if not netloc:
        raise ValueError(f"'{shown}' names no server (e.g. opc.tcp://plc:4840)")
    _host, port = split_host_port(netloc)
    if port is None:
        raise ValueError(f"'{shown}' needs a port: opc.tcp://{netloc}:4840")
    return url


def check_server_urls(value: str | list[str]) -> str | list[str]:
    """One URL, or a non-empty list of distinct ones; a bad entry is named by its index."""
    if isinstance(value, str):
        return check_server_url(value)
    if not value:
        raise ValueError("list at least one server (the primary first)")
    for i, url in enumerate(value):
        try:
            check_server_url(url)
        except ValueError as exc:
            raise ValueError(f"entry [{i}]: {exc}") from None
        if url in value[:i]:
            raise ValueError(f"entry [{i}]: '{mask_url_password(url)}' is listed twice")
    return value


class Deadband(BaseModel):
    """Report a change only when it exceeds ``value`` (absolute units, or percent of EURange)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["absolute", "percent"] = "absolute"
    value: float = 0.0

    @model_validator(mode="after")
    def _in_range(self) -> Deadband:
        if self.value < 0 or (self.type == "percent" and self.value > 100):
            raise ValueError("deadband value must be >= 0 (and <= 100 for percent)")
        return self


class Security(BaseModel):
    """A secured channel: a client certificate and key (see docs/connectors-opcua.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    policy: Literal["None", "Basic256Sha256"] = "Basic256Sha256"
    mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None


class OpcuaConnection(BaseModel):
    """How to reach the server: the seed's keys plus security (shared by source and sink)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    server_url: str | list[str] = option(
        description="Endpoint URL, or a list: the primary first, then backups to fail over to "
        "(see `failback_interval`).",
        examples=["opc.tcp://plc:4840", ["opc.tcp://plc-a:4840", "opc.tcp://plc-b:4840"]],
    )
    username: str | None = option(None, description="User name; anonymous when empty.")
    password: str | None = option(None, secret=True, description="Password of `username`.")
    security: Security | None = option(None, description="Basic256Sha256 Sign/SignAndEncrypt.")
    timeout: float = option(4.0, gt=0, advanced=True, description="Seconds per request.")
    failback_interval: float = option(
        30.0,
        ge=0,
        advanced=True,
        description="With several `server_url`s: seconds between checks whether the primary "
        "is back while a backup serves (then the connection moves back); 0 stays on the backup.",
    )
    nodes: list[str] | dict[str, str] = option(
        default_factory=list,
        description="Node ids or browse paths; a mapping `node_id: name` names them.",
    )

    @field_validator("server_url")
    @classmethod
    def _server_url(cls, value: str | list[str]) -> str | list[str]:
        return check_server_urls(value)

    def servers(self) -> list[str]:
        """``server_url`` as a list: the primary first."""
        return [self.server_url] if isinstance(self.server_url, str) else list(self.server_url)


class OpcuaConfig(OpcuaConnection):
    """The seed's keys unchanged, plus subscription settings."""

    nodes: list[str] | dict[str, str] = option(
        description="Node ids (`ns=2;i=1001`, `ns=2;s=Line3.Temp`) or browse paths "
        "(`Objects/2:Line3/2:Temp`); a mapping `node_id: name` names the `sensor` column.",
        examples=[["ns=2;i=1001", "ns=2;i=1002"], {"ns=2;i=1001": "furnace_temp"}],
    )
    sampling_interval: float = option(
        1.0, gt=0, description="Seconds between polls, or the subscription's sampling interval."
    )
    mode: Literal["polling", "subscription"] = option(
        "polling", description="One read request per cycle, or monitored items (push)."
    )
    queue_size: int = option(
        QUEUE_SIZE,
        ge=1,
        advanced=True,
        # a flow file's `queue_size` key sizes a node's input wire, so flows name it this way
        validation_alias=AliasChoices("item_queue_size", "queue_size"),
        description="`item_queue_size` in a flow file: values the server queues per item until "
        "the client fetches them. Above 1 the server marks a value that follows a discarded one "
        "with the Overflow bit: those are counted as `overflow` and warned about (with 1 a lost "
        "value goes unnoticed).",
    )
    discard_oldest: bool = option(True, advanced=True, description="Drop oldest when full.")
    deadband: Deadband | None = option(None, description="Suppress small changes.")
    subscribe_batch: int = option(
        SUBSCRIBE_BATCH, ge=1, advanced=True, description="Monitored items per create request."
    )
    batch_interval: float = option(
        0.5,
        gt=0,
        description="Subscription: the longest a value waits for others before it is emitted "
        "(caps `linger`).",
    )
    linger: float = option(
        0.0,
        ge=0,
        advanced=True,
        description="Subscription: seconds to wait for more values once some arrived. 0 emits "
        "at once (lowest latency); batches still grow under load from what arrives while the "
        "flow is busy.",
    )
    publish_requests: int = option(
        PUBLISH_REQUESTS,
        ge=1,
        le=64,
        advanced=True,
        description="Subscription: publish requests kept in flight, so the server can send the "
        "next response (at most ~1,000 values each on many servers) while one is handled.",
    )
    non_finite: NonFinite = option(
        "bad",
        description="NaN and +/-Infinity values: `bad` keeps the reading with quality `bad`, "
        "`error` sends it to the error port, `keep` leaves its quality as the server's status "
        "says. A source timestamp pandas cannot hold (before 1677, after 2262) is the "
        "receive time with quality `bad`.",
    )
    max_buffer: int = option(
        MAX_BUFFER,
        ge=1,
        advanced=True,
        description="Subscription values held between emits; when full the oldest are dropped "
        "(counted as `dropped`).",
    )

    @field_validator("nodes")
    @classmethod
    def _not_empty(cls, v: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        if not v:
            raise ValueError("list at least one node")
        return v
