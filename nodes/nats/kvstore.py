"""Checkpoints in a JetStream key-value bucket, so that another host can take a flow (or one
partition of it) over: ``flowengine run --worker I/N`` keeps each partition's checkpoint under
``<flow>.p<p>`` in ``nats_in``'s ``state_bucket``; ``--checkpoint-store nats-kv://host/bucket``
puts any flow's there (the entry point ``nats-kv`` of ``flowengine.checkpoint_stores``).

The runtime calls a store synchronously (from worker threads, and at start and stop from its
own event loop), so the NATS connection lives on an event loop of its own thread. A checkpoint
is compressed (zlib) and kept in one value when it fits the server's ``max_payload``; a larger
one goes in parts ``<key>.<a|b>.<i>`` first and then a small value at ``<key>`` naming them.
The two part sets alternate, so the parts the saved value names are never overwritten: a
crash mid-write keeps the previous checkpoint whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import zlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flowengine.checkpoint import StoreUnavailable
from flowengine.extras import require
from flowengine.masking import mask_url_password
from flowengine.nodes.nats.client import NatsLink, is_lost
from flowengine.nodes.nats.config import NatsConnection

T = TypeVar("T")
#: A whole checkpoint in the value, or the names of its parts.
INLINE, PARTS = b"FE1I", b"FE1P"
#: Seconds one store call may take (a connect included) before it counts as failed.
CALL_TIMEOUT = 30.0
_BUCKET = re.compile(r"^[A-Za-z0-9_-]+$")


def check_bucket(name: str) -> str:
    if not _BUCKET.match(name):
        raise ValueError(f"'{name}': a KV bucket name holds only letters, digits, - and _")
    return name


class KvThread:
    """One NATS connection on the event loop of its own thread, shared by the stores of one
    worker (its partitions), released when the last of them closes."""

    def __init__(self, cfg: NatsConnection) -> None:
        self.cfg = cfg
        self.users = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats-kv", daemon=True)
        self.thread.start()
        self.link: NatsLink | None = None
        self.buckets: dict[str, Any] = {}
        self._lock: asyncio.Lock | None = None

    def call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make()`` on the connection's loop and wait for it (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(self._twice(make), self.loop).result(CALL_TIMEOUT)

    async def _twice(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``make()`` on a live connection; once more on a new one when the first was lost.
        A server still away raises :class:`StoreUnavailable`."""
        for attempt in (1, 2):
            try:
                await self._connect()
                return await make()
            except Exception as exc:
                if not is_lost(exc):
                    raise
                if self.link is not None:
                    await self.link.close()
                self.link = None
                if attempt == 2:
                    raise StoreUnavailable(f"NATS KV store unavailable: {exc}") from exc
        raise AssertionError("unreachable")

    async def _connect(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.link is None or not self.link.alive:
                self.buckets.clear()
                link = NatsLink(self.cfg)
                await link.connect()
                self.link = link

    async def bucket(self, name: str) -> Any:
        """The KV bucket ``name``, created (file storage, one revision per key) if missing."""
        kv = self.buckets.get(name)
        if kv is None:
            assert self.link is not None
            js, guard = self.link.js, self.link.guard
            jserrors = require("nats.js.errors", "nats")
            try:
                kv = await guard(js.key_value(name))
            except jserrors.BucketNotFoundError:
                kv = await guard(js.create_key_value(bucket=name, history=1))
            self.buckets[name] = kv
        return kv

    @property
    def chunk(self) -> int:
        """The largest part of a checkpoint one value holds."""
        nc = self.link.nc if self.link is not None else None
        return max(16_384, (nc.max_payload if nc is not None else 1 << 20) * 3 // 4)

    def release(self) -> None:
        """One store is done; the last one closes the connection and ends the thread."""
        self.users -= 1
        if self.users > 0 or not self.thread.is_alive():
            return
        link, self.link = self.link, None
        if link is not None:
            with contextlib.suppress(Exception):  # a dead connection: nothing to save
                asyncio.run_coroutine_threadsafe(link.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class KvBackend:
    """The checkpoint ``key`` in ``bucket`` (see the module doc for the layout)."""

    def __init__(self, thread: KvThread, bucket: str, key: str, where: str) -> None:
        self.kv_thread = thread
        self.bucket, self.key = check_bucket(bucket), key
        self.where = f"{where}/{bucket}/{key}"
        self._parts: str | None = None  # the part set the saved value names ("a" or "b")
        thread.users += 1

    def read(self) -> bytes | None:
        return self.kv_thread.call(self._read)

    def write(self, data: bytes) -> None:
        self.kv_thread.call(lambda: self._write(data))

    def close(self) -> None:
        self.kv_thread.release()

    async def _value(self, kv: Any, key: str) -> bytes | None:
        jserrors = require("nats.js.errors", "nats")
        assert self.kv_thread.link is not None
        try:
            entry = await self.kv_thread.link.guard(kv.get(key))
        except jserrors.KeyNotFoundError:
            return None
        return bytes(entry.value or b"")

    async def _read(self) -> bytes | None:
        kv = await self.kv_thread.bucket(self.bucket)
        head = await self._value(kv, self.key)
        if head is None:
            return None
        kind, body = head[:4], head[4:]
        if kind == INLINE:
            self._parts = ""
            return zlib.decompress(body)
        if kind != PARTS:
            raise OSError(f"{self.key} in bucket {self.bucket} is not a flowengine checkpoint")
        parts, count = json.loads(body)
        chunks = [await self._value(kv, f"{self.key}.{parts}.{i}") for i in range(count)]
        if any(c is None for c in chunks):
            raise OSError(f"a part of checkpoint {self.key} is missing from bucket {self.bucket}")
        self._parts = parts
        return zlib.decompress(b"".join(c for c in chunks if c is not None))

    async def _write(self, data: bytes) -> None:
        kv = await self.kv_thread.bucket(self.bucket)
        guard = self.kv_thread.link.guard  # type: ignore[union-attr]
        packed = zlib.compress(data, 1)
        size = self.kv_thread.chunk
        if len(packed) + len(INLINE) <= size:
            await guard(kv.put(self.key, INLINE + packed))
            return
        if self._parts is None:  # which set the saved value names: write the other one
            await self._read_head(kv)
        parts = "b" if self._parts == "a" else "a"
        pieces = [packed[i : i + size] for i in range(0, len(packed), size)]
        for i, piece in enumerate(pieces):
            await guard(kv.put(f"{self.key}.{parts}.{i}", piece))
        await guard(kv.put(self.key, PARTS + json.dumps([parts, len(pieces)]).encode()))
        self._parts = parts

    async def _read_head(self, kv: Any) -> None:
        head = await self._value(kv, self.key) or b""
        self._parts = json.loads(head[4:])[0] if head[:4] == PARTS else ""


def open_store(url: str, key: str) -> KvBackend:
    """The ``nats-kv`` checkpoint store: ``nats-kv://[user:password@]host[:port][,host2]/bucket``
    (``nats-kv+tls://`` for TLS with the system's CAs), the checkpoint ``key`` in ``bucket``."""
    parts = urlsplit(url)
    bucket = parts.path.strip("/")
    if not parts.netloc or not bucket:
        raise ValueError(
            f"checkpoint store '{mask_url_password(url)}': use nats-kv://host:4222/bucket"
        )
    userinfo, _, hosts = parts.netloc.rpartition("@")
    scheme = "tls" if parts.scheme.lower().endswith("+tls") else "nats"
    auth = f"{userinfo}@" if userinfo else ""
    servers = [f"{scheme}://{auth}{host}" for host in hosts.split(",") if host]
    thread = KvThread(NatsConnection(servers=servers))
    shown = mask_url_password(f"{parts.scheme}://{parts.netloc}")
    return KvBackend(thread, check_bucket(bucket), key, shown)
