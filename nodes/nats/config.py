"""NATS connection and JetStream stream settings: plain pydantic models that the node configs
compose (``class NatsOutConfig(NodeConfig, NatsConnection, NatsStream)``).

They forbid unknown keys and are frozen like ``NodeConfig``; durations take seconds or strings
such as ``500ms``, ``2m``, ``7d``; sizes take bytes or ``10GB``.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from flowengine.masking import mask_url_password
from flowengine.node import option
from flowengine.settings import parse_bytes
from flowengine.sqlurl import split_host_port

#: Characters JetStream does not allow in stream and consumer names.
_BAD_NAME = re.compile(r"[\s.*>/\\]")
#: What a subject token may not hold (wildcards are for filters only, spaces never).
_SUBJECT = re.compile(r"^[^\s.*>]+(\.[^\s.*>]+)*$")


def check_server(url: str) -> str:
    """``nats://host[:port]`` or ``tls://host[:port]``; a bare ``host[:port]`` means nats://."""
    shown = mask_url_password(url)
    text = url.strip()
    if "://" not in text:
        text = f"nats://{text}"
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("nats", "tls"):
        raise ValueError(f"'{shown}': use nats://host:4222 or tls://host:4222")
    netloc = parts.netloc.rpartition("@")[2]
    if not netloc:
        raise ValueError(f"'{shown}' names no server (e.g. nats://nats.plant.local:4222)")
    split_host_port(netloc)  # a port out of range or not a number is named
    return text


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def seconds(value: Any, *, zero: bool = False) -> float:
    """Seconds from a number or a duration string (``500ms``, ``30s``, ``2m``, ``12h``, ``7d``)."""
    if isinstance(value, bool):
        raise ValueError("a duration: seconds or a string like 30s, 2m, 7d")
    if isinstance(value, int | float):
        result = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*", str(value).lower())
        if match is None or match.group(2) not in {**_UNITS, "": 1.0}:
            raise ValueError(f"{value!r} is not a duration like 500ms, 30s, 2m, 12h or 7d")
        result = float(match.group(1)) * _UNITS.get(match.group(2), 1.0)
    if result < 0 or (result == 0 and not zero) or result != result or result == float("inf"):
        raise ValueError(f"{value!r}: a duration must be positive" + (" or 0" if zero else ""))
    return result


def check_name(value: str, what: str) -> str:
    """A stream or consumer name: no spaces, dots, wildcards or slashes (JetStream's rule)."""
    if not value or _BAD_NAME.search(value):
        raise ValueError(f"'{value}': a {what} name may not be empty or hold . * > / \\ or spaces")
    return value


class NatsConnection(BaseModel):
    """How to reach the NATS servers, shared by ``nats_in`` and ``nats_out``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    servers: str | list[str] = option(
        "nats://127.0.0.1:4222",
        description="Server URL, or a list tried in order (the first that answers serves): "
        "`nats://host:4222`, `tls://host:4222`, or `host:port`.",
        examples=["nats://nats.plant.local:4222", ["nats://n1:4222", "nats://n2:4222"]],
    )
    user: str | None = option(None, description="User name (with `password`).")
    password: str | None = option(None, secret=True, description="Password of `user`.")
    token: str | None = option(None, secret=True, description="Authentication token.")
    nkey_seed_file: str | None = option(
        None, description="File holding an NKey seed (`SU...`): NKey authentication."
    )
    creds_file: str | None = option(
        None, description="A `.creds` file (user JWT and NKey seed): decentralised auth."
    )
    tls: bool = option(False, description="Use TLS (implied by `tls://` URLs and `ca_file`).")
    ca_file: str | None = option(None, description="CA certificate (PEM) to verify the server.")
    certfile: str | None = option(None, description="Client certificate (PEM) for mutual TLS.")
    keyfile: str | None = option(None, description="Private key (PEM) of `certfile`.")
    insecure: bool = option(
        False, advanced=True, description="Skip host name checks (test rigs only)."
    )
    connect_timeout: float = option(
        5.0, gt=0, advanced=True, description="Seconds to wait for each server to answer."
    )
    name: str = option(
        "flowengine", advanced=True, description="Client name the server shows for this node."
    )

    @field_validator("servers")
    @classmethod
    def _servers(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str):
            return check_server(value)
        if not value:
            raise ValueError("list at least one server (the primary first)")
        checked: list[str] = []
        for i, url in enumerate(value):
            try:
                url = check_server(url)
            except ValueError as exc:
                raise ValueError(f"entry [{i}]: {exc}") from None
            if url in checked:
                raise ValueError(f"entry [{i}]: '{mask_url_password(url)}' is listed twice")
            checked.append(url)
        return checked

    @model_validator(mode="after")
    def _auth(self) -> NatsConnection:
        if self.password and not self.user:
            raise ValueError("password given without user")
        if self.token and self.user:
            raise ValueError("give either user/password or token, not both")
        if self.nkey_seed_file and self.creds_file:
            raise ValueError("give either nkey_seed_file or creds_file (it holds the seed)")
        if self.keyfile and not self.certfile:
            raise ValueError("keyfile given without certfile")
        return self

    def urls(self) -> list[str]:
        """Every server URL, the primary first."""
        return [self.servers] if isinstance(self.servers, str) else list(self.servers)

    def wants_tls(self) -> bool:
        return self.tls or bool(self.ca_file) or any(u.startswith("tls://") for u in self.urls())


class NatsSubject(BaseModel):
    """Which stream and subject a node works on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stream: str = option(description="JetStream stream name.", examples=["PLANT_READINGS"])
    subject: str = option(
        description="Subject the batches travel on; partitioned streams add `.<partition>`.",
        examples=["plant.readings"],
    )

    @field_validator("stream")
    @classmethod
    def _stream(cls, value: str) -> str:
        return check_name(value, "stream")

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if not _SUBJECT.match(value):
            raise ValueError(
                f"'{value}': a subject is dot-separated tokens without spaces or wildcards"
            )
        return value


class NatsStream(NatsSubject):
    """The stream ``nats_out`` creates, or checks against the server's."""

    manage_stream: bool = option(
        True,
        description="Create the stream when it is missing, and refuse to publish (saying what "
        "differs) when the server's stream has other settings; false uses it as it is.",
    )
    retention: Literal["limits", "interest", "workqueue"] = option(
        "limits",
        description="`limits`: keep messages until max_age/max_bytes (consumers can replay); "
        "`interest`: until every consumer acked; `workqueue`: until one consumer acked.",
    )
    max_age: float = option(
        7 * 86400.0, description="Drop messages older than this (`7d`, `12h`; 0: never)."
    )
    max_bytes: int = option(
        -1, ge=-1, description="Drop the oldest messages beyond this size (`10GB`; -1: no limit)."
    )
    replicas: int = option(1, ge=1, le=5, description="Copies in a NATS cluster (3 for HA).")
    storage: Literal["file", "memory"] = option(
        "file", description="`file` survives a server restart; `memory` does not."
    )
    duplicate_window: float = option(
        120.0,
        description="A re-sent batch (same `Nats-Msg-Id`) within this time is dropped (`2m`).",
    )

    @field_validator("max_age", mode="before")
    @classmethod
    def _max_age(cls, value: Any) -> float:
        return seconds(value, zero=True)

    @field_validator("duplicate_window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> float:
        return seconds(value)

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_bytes(value) if isinstance(value, str) else value


def parse_worker(value: str) -> tuple[int, int]:
    """``"I/N"`` as ``(I, N)`` with 0 <= I < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if match is None:
        raise ValueError(f"'{value}': give worker as I/N, e.g. 0/2 (worker 0 of 2)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise ValueError(f"'{value}': I/N needs N >= 1 and 0 <= I < N")
    return index, count
