"""The NATS connection shared by ``nats_in`` and ``nats_out``.

nats-py is imported lazily (``require("nats", "nats")``). The client never reconnects by itself:
``connect`` tries each configured server in order and keeps the first that answers; a lost
connection ends it (``lost`` is set and every waiting call raises ``ConnectionError`` at once
instead of at its timeout), so the runtime's backoff (a source) or the sink's next write
connects again from scratch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Awaitable
from typing import Any, TypeVar

from flowengine.extras import LibraryMissing, installed, require
from flowengine.masking import mask_url_password
from flowengine.nodes.nats.config import NatsConnection

T = TypeVar("T")

log = logging.getLogger("flowengine.nodes.nats.client")


def failure(url: str, exc: BaseException | None) -> str:
    """Why connecting to one server failed, in a few words (the seed's style)."""
    if exc is None:
        return "no answer"
    text = str(exc).strip() or type(exc).__name__
    lower = text.lower()
    if "authorization violation" in lower or "authentication" in lower:
        return "authorization violation (check user/password, token, nkey or creds)"
    if isinstance(exc, ConnectionRefusedError) or "connect call failed" in lower:
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "no answer (timeout)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or text}"
    return mask_url_password(text)


def is_lost(exc: BaseException) -> bool:
    """True when ``exc`` means the server is unreachable or went away (try again later),
    as opposed to something the server refused."""
    if isinstance(exc, ConnectionError | OSError | TimeoutError):  # asyncio and nats timeouts
        return True
    errors = require("nats.errors", "nats")
    jserrors = require("nats.js.errors", "nats")
    return isinstance(
        exc,
        errors.ConnectionClosedError
        | errors.StaleConnectionError
        | errors.ConnectionReconnectingError
        | errors.OutboundBufferLimitError
        | errors.NoRespondersError
        | jserrors.NoStreamResponseError
        | jserrors.ServiceUnavailableError,
    )


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Take a cancelled call's outcome, so asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()


class NatsLink:
    """One connection, to the first of the configured servers that answers."""

    def __init__(self, cfg: NatsConnection) -> None:
        self.cfg = cfg
        self.nc: Any = None
        self.js: Any = None
        #: The server that serves (password masked), for status texts and messages.
        self.url = ""
        #: Set when the connection is gone; ``reason`` says why.
        self.lost = asyncio.Event()
        self.reason = ""

    async def connect(self) -> None:
        """Connect to the first server that answers, or raise ``ConnectionError("Failed to
        connect to NATS server nats://...: why")`` naming every server tried."""
        await self.close()
        nats = require("nats", "nats")
        options = self._options()
        tried: list[str] = []
        for url in self.cfg.urls():
            shown = mask_url_password(url)
            errors: list[BaseException] = []

            async def on_error(exc: Exception, errors: list[BaseException] = errors) -> None:
                errors.append(exc)

            try:
                nc = await nats.connect(servers=[url], error_cb=on_error, **options)
            except Exception as exc:
                tried.append(f"{shown}: {failure(url, errors[-1] if errors else exc)}")
                continue
            self._use(nc, shown)
            return
        noun = "server" if len(tried) == 1 else "servers"
        raise ConnectionError(f"Failed to connect to NATS {noun} {'; '.join(tried)}")

    def _use(self, nc: Any, shown: str) -> None:
        self.nc, self.js, self.url = nc, nc.jetstream(), shown
        self.lost = asyncio.Event()
        self.reason = ""

    def _options(self) -> dict[str, Any]:
        """nats-py's connect options: no reconnects of its own (see the module doc), auth, TLS."""
        cfg = self.cfg
        lost = self._on_lost
        options: dict[str, Any] = {
            "name": cfg.name,
            "allow_reconnect": False,
            "max_reconnect_attempts": 1,  # 0 would mean "forever" to nats-py's first connect
            "reconnect_time_wait": 0,
            "connect_timeout": cfg.connect_timeout,
            "disconnected_cb": lost,
            "closed_cb": lost,
            "user": cfg.user,
            "password": cfg.password,
            "token": cfg.token,
        }
        if cfg.nkey_seed_file or cfg.creds_file:
            if not installed("nkeys"):
                raise LibraryMissing(
                    "NKey and creds authentication need the nkeys package: "
                    "pip install 'nats-py[nkeys]'"
                )
            path = cfg.nkey_seed_file or cfg.creds_file
            assert path is not None
            if not os.path.isfile(path):
                raise ConnectionError(f"NATS credentials file not found: {path}")
            key = "nkeys_seed" if cfg.nkey_seed_file else "user_credentials"
            options[key] = path
        if cfg.wants_tls():
            options["tls"] = self._tls()
        return options

    def _tls(self) -> ssl.SSLContext:
        cfg = self.cfg
        context = ssl.create_default_context(cafile=cfg.ca_file)
        if cfg.certfile:
            context.load_cert_chain(cfg.certfile, cfg.keyfile)
        if cfg.insecure:
            context.check_hostname = False
        return context

    async def _on_lost(self) -> None:
        if not self.lost.is_set():
            self.reason = f"connection to NATS server {self.url} lost"
            self.lost.set()

    async def guard(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` unless the connection is lost first: then ``ConnectionError``
        at once (nats-py would wait for the request's whole timeout)."""
        task = asyncio.ensure_future(awaitable)
        if self.lost.is_set():
            task.cancel()
            raise ConnectionError(self.reason)
        waiter = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not task.done():
                task.cancel()  # nats-py may turn the cancel into its own error: retrieve it
                task.add_done_callback(_retrieve)
        if task.done() and not task.cancelled():
            return task.result()
        raise ConnectionError(self.reason)

    @property
    def alive(self) -> bool:
        return self.nc is not None and not self.lost.is_set() and self.nc.is_connected

    async def close(self) -> None:
        nc, self.nc, self.js = self.nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), 5)
            except Exception as exc:  # closing a half-dead connection: nothing to save
                log.debug("closing the NATS connection: %s", exc)
