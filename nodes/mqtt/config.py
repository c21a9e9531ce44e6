"""MQTT connection and parsing settings: plain pydantic models that node configs and the
seed's ``MQTTConfig`` compose (``class MqttInConfig(NodeConfig, MqttConnection, MqttParsing)``).

They forbid unknown keys and are frozen like ``NodeConfig``, so the seed's dict config is checked
the same way as a node's.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from flowengine.compression import check_codec
from flowengine.node import option
from flowengine.sqlurl import split_host_port
from flowengine.types import NonFinite

#: What a source does with NaN, +/-Infinity or an overflowing number (see ``non_finite``).


def broker_entry(value: str) -> tuple[str, int | None]:
    """``(host, port or None)`` of a ``broker_host`` list entry: ``host``, ``host:port``,
    ``[v6]:port`` or a bare IPv6 address."""
    bare = value.strip().removeprefix("[").removesuffix("]")
    try:
        ipaddress.IPv6Address(bare)
    except ValueError:
        pass
    else:
        return bare, None
    if "://" in value:
        raise ValueError(f"'{value}': give host or host:port (no scheme)")
    return split_host_port(value)


def check_broker_list(hosts: list[str]) -> list[str]:
    """A non-empty list of distinct brokers; a bad entry is named by its index."""
    if not hosts:
        raise ValueError("list at least one broker (the primary first)")
    seen: list[tuple[str, int | None]] = []
    for i, host in enumerate(hosts):
        try:
            entry = broker_entry(host)
        except ValueError as exc:
            raise ValueError(f"entry [{i}]: {exc}") from None
        if entry in seen:
            raise ValueError(f"entry [{i}]: '{host}' is listed twice")
        seen.append(entry)
    return [h.strip() for h in hosts]


class MqttConnection(BaseModel):
    """Broker connection settings shared by ``mqtt_in`` and ``mqtt_out`` (seed keys kept)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker_host: str | list[str] = option(
        "127.0.0.1",
        description="Broker host name or address, or a list: the primary first, then backups "
        "to fail over to, each `host` or `host:port` (see `failback_interval`).",
        examples=["mqtt.plant.local", ["mqtt-a.plant.local", "mqtt-b.plant.local:1884"]],
    )
    broker_port: int = option(1883, ge=1, le=65535, description="Broker port (8883 for TLS).")
    username: str | None = option(None, description="User name, if the broker wants one.")
    password: str | None = option(None, secret=True, description="Password for `username`.")
    keep_alive: int = option(60, ge=0, description="Seconds between pings (broker cuts at 1.5x).")
    client_id: str = option(
        "", description="Client id; required for a persistent session (clean_session: false)."
    )
    clean_session: bool = option(
        True,
        description="False keeps subscriptions and queued QoS 1/2 messages across disconnects.",
    )
    protocol: Literal["3.1.1", "5"] = option("3.1.1", description="MQTT protocol version.")
    session_expiry: int = option(
        86400, ge=0, advanced=True, description="MQTT 5 persistent session lifetime in seconds."
    )
    tls: bool = option(False, description="Use TLS (implied by `ca_file`).")
    ca_file: str | None = option(None, description="CA certificate (PEM) to verify the broker.")
    certfile: str | None = option(None, description="Client certificate (PEM) for mutual TLS.")
    keyfile: str | None = option(None, description="Private key (PEM) of `certfile`.")
    insecure: bool = option(
        False, advanced=True, description="Skip host name checks (test rigs only)."
    )
    connect_timeout: float = option(10.0, gt=0, advanced=True, description="Seconds for CONNACK.")
    failback_interval: float = option(
        30.0,
        ge=0,
        advanced=True,
        description="With several `broker_host`s: seconds between checks whether the primary "
        "is back while a backup serves (then the connection moves back); 0 stays on the backup.",
    )

    @field_validator("broker_host")
    @classmethod
    def _host(cls, value: str | list[str]) -> str | list[str]:
        """A host name or address (a bare IPv6 address too, as paho takes it); the port goes
        in ``broker_port``, so ``broker:1883`` or ``mqtt://broker`` fail at validation. A list
        entry may carry its port (``host:port``, ``[::1]:1884``); a bad one is named by index."""
        if isinstance(value, list):
            return check_broker_list(value)
        bare = value.strip().removeprefix("[").removesuffix("]")
        try:
            ipaddress.IPv6Address(bare)
        except ValueError:
            pass
        else:
            return bare
        if "://" in value:
            raise ValueError(f"'{value}': give the host name alone (the port in broker_port)")
        host, port = split_host_port(value)
        if port is not None:
            raise ValueError(f"'{value}': put the port in broker_port, not in broker_host")
        return host

    def brokers(self, port: int | None = None) -> list[tuple[str, int]]:
        """``(host, port)`` of each broker, the primary first (``broker_port`` by default)."""
        if isinstance(self.broker_host, str):
            return [(self.broker_host, port or self.broker_port)]
        entries = [broker_entry(h) for h in self.broker_host]
        return [(h, p or port or self.broker_port) for h, p in entries]

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS as paho set it up before: the CA file (else the system's), a client certificate
        for mutual TLS, ``insecure`` skipping the host name check (and, without a CA file, the
        certificate check)."""
        if not (self.tls or self.ca_file):
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.insecure and not self.ca_file:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            if self.ca_file:
                ctx.load_verify_locations(self.ca_file)
            else:
                ctx.load_default_certs()
            ctx.check_hostname = not self.insecure
        if self.certfile:
            ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        return {"5.0": "5", 5: "5", 311: "3.1.1", "311": "3.1.1"}.get(value, value)

    @model_validator(mode="after")
    def _session_needs_id(self) -> MqttConnection:
        if not self.clean_session and not self.client_id:
            raise ValueError("clean_session: false needs a fixed client_id (the session's name)")
        if self.keyfile and not self.certfile:
            raise ValueError("keyfile given without certfile")
        return self


class MqttParsing(BaseModel):
    """How payloads become rows of the long format (timestamp, sensor, value, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str | list[str] = option(
        "sensors/#", description="Topic filter(s) to subscribe; `+` and `#` wildcards."
    )
    topics: list[str] = option([], description="More topic filters (added to `topic`).")
    qos: Literal[0, 1, 2] = option(1, description="Subscription QoS.")
    sensor_from: str | int = option(
        "sensor",
        description="A payload field name (the topic when the field is absent), `topic` (whole "
        "topic), or `topic[N]` / an int N (a topic level, -1 = last).",
        examples=["topic[-1]", 2, "id"],
    )
    value_field: str = option("value", description="Payload field holding the reading.")
    timestamp_field: str = option(
        "timestamp", description="Payload field holding the time (receive time when absent)."
    )
    timestamp_format: Literal["auto", "iso", "epoch_s", "epoch_ms"] = option(
        "auto", description="`auto`: strings as ISO 8601, numbers as epoch s or ms by size."
    )
    non_finite: NonFinite = option(
        "bad",
        description="NaN, +/-Infinity and numbers too large for a float (1e400): `bad` keeps "
        "the reading with quality `bad`, `error` sends the payload to the error port, `keep` "
        "marks it `good` (the old behaviour). A null timestamp is stamped with the receive "
        "time and quality `bad`.",
    )
    max_payload_bytes: int = option(
        1_048_576,
        ge=1,
        advanced=True,
        description="Larger payloads are not parsed: they go to the error port (a preview).",
    )
    decompress: Literal["auto", "none", "gzip", "zstd"] = option(
        "auto",
        description="`auto`: a payload starting with the gzip (1f8b) or zstd (28b52ffd) magic "
        "number is decompressed first (as `mqtt_out` with `compression` sends it), others are "
        "read as they are; a named codec requires it. At most `max_payload_bytes` decoded.",
    )

    @field_validator("decompress")
    @classmethod
    def _decompress(cls, value: str) -> str:
        return check_codec(value)  # zstd needs flowengine[zstd]

    @field_validator("sensor_from")
    @classmethod
    def _sensor_from(cls, value: str | int) -> str | int:
        if isinstance(value, str) and value.startswith("topic["):
            try:
                int(value[6:].rstrip("]"))
            except ValueError:
                raise ValueError("topic level must look like topic[2] or topic[-1]") from None
        return value

    def filters(self) -> list[str]:
        """Every topic filter, in order, without duplicates."""
        first = [self.topic] if isinstance(self.topic, str) else list(self.topic)
        return list(dict.fromkeys(first + self.topics))
