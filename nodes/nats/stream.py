"""The JetStream stream of a node: created from the config, or checked against it.

``nats_out`` creates a missing stream and refuses (with every difference named) a stream whose
settings differ from its config; it never changes a stream on the server. ``nats_in`` reads a
stream's partition count from it (see ``partition.py``).
"""

from __future__ import annotations

import math
from typing import Any

from flowengine.extras import require
from flowengine.nodes.nats.client import NatsLink
from flowengine.nodes.nats.config import NatsStream
from flowengine.nodes.nats.partition import mark, marked


def wanted_subjects(subject: str, partitions: int | None) -> list[str]:
    """The stream's subjects: the subject itself, or one token below it per partition."""
    return [subject] if partitions is None else [f"{subject}.*"]


def stream_config(cfg: NatsStream, partitions: int | None, partition_by: str | None) -> Any:
    """The nats-py ``StreamConfig`` that ``cfg`` asks for."""
    api = require("nats.js.api", "nats")
    return api.StreamConfig(
        name=cfg.stream,
        description=mark(partitions, partition_by or "") if partitions else None,
        subjects=wanted_subjects(cfg.subject, partitions),
        retention=api.RetentionPolicy(cfg.retention),
        max_age=cfg.max_age,
        max_bytes=cfg.max_bytes,
        num_replicas=cfg.replicas,
        storage=api.StorageType(cfg.storage),
        duplicate_window=cfg.duplicate_window,
    )


def duration(value: float | None) -> str:
    """Seconds in the largest whole unit: ``7d``, ``90s``; 0 (no limit) as ``unlimited``."""
    if not value:
        return "unlimited"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if value >= size and math.isclose(value / size, round(value / size)):
            return f"{round(value / size)}{unit}"
    return f"{value:g}s"


def size(value: int | None) -> str:
    return "unlimited" if value is None or value < 0 else f"{value} bytes"


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


def differences(server: Any, want: Any) -> list[str]:
    """Each setting of the server's stream config that is not what ``want`` asks for."""
    found: list[str] = []

    def differ(name: str, there: str, here: str) -> None:
        if there != here:
            found.append(f"{name} is {there} on the server, {here} here")

    differ("subjects", ", ".join(sorted(server.subjects or [])), ", ".join(sorted(want.subjects)))
    differ("retention", _text(server.retention), _text(want.retention))
    differ("storage", _text(server.storage), _text(want.storage))
    differ("replicas", str(server.num_replicas), str(want.num_replicas))
    differ("max_age", duration(server.max_age), duration(want.max_age))
    differ("max_bytes", size(server.max_bytes), size(want.max_bytes))
    differ("duplicate_window", duration(server.duplicate_window), duration(want.duplicate_window))
    found.extend(partition_differences(server, want))
    return found


def partition_differences(server: Any, want: Any) -> list[str]:
    """The partition count and key recorded on the server against the wanted ones."""
    have, have_key = marked(server.description)
    need, need_key = marked(want.description)
    if have == need and have_key == need_key:
        return []
    there = f"{have} (by {have_key})" if have else "none (not partitioned)"
    here = f"{need} (by {need_key})" if need else "none (not partitioned)"
    return [f"partitions is {there} on the server, {here} here"]


async def ensure_stream(
    link: NatsLink, cfg: NatsStream, partitions: int | None, partition_by: str | None
) -> str:
    """Create the stream when missing, or check it; what was done, for the log. Raises
    ``ValueError`` naming every difference when the server's stream is not the config's."""
    jserrors = require("nats.js.errors", "nats")
    want = stream_config(cfg, partitions, partition_by)
    try:
        info = await link.guard(link.js.stream_info(cfg.stream))
    except jserrors.NotFoundError:
        if not cfg.manage_stream:
            raise LookupError(
                f"stream {cfg.stream} not found on NATS server {link.url} "
                "(manage_stream is false: create it, or let this node do it)"
            ) from None
        await link.guard(link.js.add_stream(want))
        return f"created stream {cfg.stream} ({', '.join(want.subjects)})"
    wrong = differences(info.config, want)
    if cfg.manage_stream and wrong:
        raise ValueError(_refusal(cfg.stream, link.url, wrong))
    vital = partition_differences(info.config, want) + [w for w in wrong if "subjects" in w]
    if vital:  # publishing to the wrong subjects or partitions loses or misroutes data
        raise ValueError(_refusal(cfg.stream, link.url, vital))
    return f"stream {cfg.stream} checked" if cfg.manage_stream else f"using stream {cfg.stream}"


def _refusal(stream: str, url: str, wrong: list[str]) -> str:
    return (
        f"stream {stream} on NATS server {url} differs from this node's settings: "
        f"{'; '.join(wrong)}. Nothing was changed: edit the stream on the server "
        f"(nats stream edit {stream}) or the node's settings"
    )


async def stream_partitions(link: NatsLink, stream: str) -> tuple[int | None, str, int]:
    """The partition count a stream records (None: not partitioned), its retention, and the
    last sequence it has assigned."""
    jserrors = require("nats.js.errors", "nats")
    try:
        info = await link.guard(link.js.stream_info(stream))
    except jserrors.NotFoundError:
        raise LookupError(
            f"stream {stream} not found on NATS server {link.url}: it appears when its "
            "producer (nats_out) first starts"
        ) from None
    partitions, _ = marked(info.config.description)
    return partitions, _text(info.config.retention), int(info.state.last_seq)
