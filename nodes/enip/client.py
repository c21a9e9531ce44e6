"""The EtherNet/IP client shared by ``enip_in``, ``enip_out``, browse and the seed's connector.

pycomm3's ``LogixDriver`` is blocking, so every call runs in a thread (``asyncio.to_thread``),
one at a time per client (a lock), one connection per node. pycomm3 reads a tag only when it
knows its type: from the controller's tag list (``tag_list: upload``) or, where the device has
no tag list service (cpppo's simulator, some gateways), from a plain Read Tag of one element
whose reply names the type (``probe``); probed tags are read by symbolic path. pycomm3 is
imported lazily, so this module imports without the ``enip`` extra.

The client never reconnects by itself: a lost connection raises ``ConnectionError`` and the
runtime's backoff reconnects (a new session, tags learnt again).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import struct
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from flowengine.extras import require
from flowengine.nodes.enip.config import EnipConnection, TagSpec

#: The type code a Read Tag reply starts with for a structure (then the structure handle).
STRUCT_CODE = 0x02A0
#: Tags probed per Multiple Service request.
PROBE_BATCH = 20
#: pycomm3's standard (not Large) Forward Open size: its reads fragment above it.
SMALL_CONNECTION = 500
BIT = re.compile(r"\.\d+$")
#: pycomm3's loggers that print a traceback when a device refuses the tag list upload.
QUIET_LOGGERS = (
    "pycomm3.packets.ethernetip.SendUnitDataResponsePacket",
    "pycomm3.logix_driver.LogixDriver",
    "pycomm3.cip_driver.CIPDriver",
)


def unbit(tag: str) -> str:
    """``Status`` of ``Status.5``: the tag whose type a bit access needs."""
    return BIT.sub("", tag)


def info_key(tag: str) -> str:
    """The key pycomm3 looks tag definitions up by: array indexes and a bit number dropped."""
    return ".".join(part.partition("[")[0] for part in unbit(tag).split("."))


def reason(exc: BaseException) -> str:
    """The innermost cause's text (pycomm3 wraps socket errors twice), ``timeout`` for one."""
    inner: BaseException = exc
    while (nxt := _wrapped(inner)) is not None:
        inner = nxt
    if isinstance(inner, TimeoutError):
        return "timeout"
    if isinstance(inner, struct.error):  # pycomm3 parsing the empty read of a closed socket
        return "the device closed the connection"
    return str(inner) or str(exc) or type(exc).__name__


def _wrapped(exc: BaseException) -> BaseException | None:
    """The exception ``exc`` wraps (``raise ... from None`` wraps nothing)."""
    return exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


@functools.cache
def _driver_class() -> Any:
    """``LogixDriver`` that also knows probed tag definitions (pycomm3 1.2's lookup hook)."""
    pycomm3 = require("pycomm3", "enip")

    class ProbedDriver(pycomm3.LogixDriver):  # type: ignore[misc,name-defined]
        probed: dict[str, dict[str, Any]]

        def _get_tag_info(self, base: str, attrs: list[str]) -> Any:
            found = self.probed.get(info_key(".".join([base, *attrs])))
            return found if found is not None else super()._get_tag_info(base, attrs)

        def _write_build_requests(self, parsed_tags: dict[int, Any]) -> Any:
            # pycomm3 1.2.16 builds a lone Write Tag twice into one message (the device sees
            # the value twice: "access beyond end of the object"); a Multiple Service packet
            # of one is encoded right.
            if self._micro800:
                return super()._write_build_requests(parsed_tags)
            return self._write_build_multi_requests(parsed_tags)

    return ProbedDriver


@contextlib.contextmanager
def _quiet(quiet: bool) -> Iterator[None]:
    """Hold back pycomm3's tracebacks for a tag list upload that may fail by design (``auto``
    on a device without the service): the failure is reported once, as the fallback reason."""
    if not quiet:
        yield
        return
    me = threading.get_ident()
    hold = logging.Filter()
    hold.filter = lambda record: record.thread != me  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    for logger in loggers:
        logger.addFilter(hold)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(hold)


def _comm_error(exc: BaseException) -> bool:
    """True when ``exc`` (or what it wraps) is a connection failure, not a tag's failure."""
    pycomm3 = require("pycomm3", "enip")
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, pycomm3.CommError | OSError):
            return True
        if "did not connected" in str(seen):  # pycomm3: the Forward Open failed
            return True
        seen = _wrapped(seen)
    return False


class EnipClient:
    """One session with one controller: learn tag types, read and write many tags per request."""

    def __init__(self, cfg: EnipConnection, tags: Sequence[TagSpec] | None = None) -> None:
        self.cfg = cfg
        self.tags = list(cfg.tags if tags is None else tags)
        self.driver: Any = None
        #: How tag types were learnt on this connection: ``upload`` or ``probe``.
        self.mode = ""
        #: Why a tag cannot be read (unknown, structure without its template), by info key.
        self.failed: dict[str, str] = {}
        #: Why the tag list upload failed, when ``auto`` fell back to probing.
        self.upload_error = ""
        self._lock = threading.Lock()

    # ---- connecting ------------------------------------------------------------------------
    async def connect(self) -> None:
        """Open a session (and a CIP connection), learn the tags' types."""
        await asyncio.to_thread(self._connect)

    def _connect(self) -> None:
        with self._lock:
            self._discard()
            self.failed, self.upload_error = {}, ""
            if self.cfg.tag_list != "probe":
                driver = self._open()
                try:
                    with _quiet(self.cfg.tag_list == "auto"):
                        driver.get_tag_list(program="*")
                except Exception as exc:
                    self._discard(driver)
                    if self.cfg.tag_list == "upload" or _comm_error(exc):
                        raise ConnectionError(
                            f"{self.cfg.address}: tag list upload failed: {reason(exc)}"
                        ) from None
                    self.upload_error = reason(exc).strip(" -")
                else:
                    self.driver, self.mode = driver, "upload"
                    self._check_uploaded(self.tags)
                    return
            self.driver, self.mode = self._open(), "probe"
            self._probe(self.tags)

    def _open(self) -> Any:
        """A new driver with an open session; ConnectionError naming the device if not."""
        driver = _driver_class()(self.cfg.path, init_tags=False)
        driver.probed = {}
        driver.socket_timeout = self.cfg.timeout
        try:
            opened = driver.open()
        except Exception as exc:
            self._discard(driver)
            raise ConnectionError(f"{self.cfg.address}: {reason(exc)}") from None
        if not opened:
            self._discard(driver)
            raise ConnectionError(f"{self.cfg.address}: the session was not registered")
        return driver

    def _check_uploaded(self, specs: Sequence[TagSpec]) -> None:
        """Mark tags the uploaded list does not hold, so they are never sent (and logged)."""
        for spec in specs:
            try:
                self.driver.get_tag_info(unbit(spec.plc_tag))
            except Exception as exc:
                self.failed[info_key(spec.plc_tag)] = str(exc)

    def _probe(self, specs: Sequence[TagSpec]) -> None:
        """Learn each tag's type from a one-element Read Tag reply (batched per request)."""
        require("pycomm3", "enip")
        from pycomm3.cip_driver import with_forward_open
        from pycomm3.packets.logix import (
            MultiServiceRequestPacket,
            ReadTagRequestPacket,
            TagServiceResponsePacket,
        )

        class Probe(ReadTagRequestPacket):  # type: ignore[misc]
            # keep the raw reply: it starts with the type code
            response_class = TagServiceResponsePacket  # type: ignore[assignment]

        driver = self.driver
        todo = {info_key(s.plc_tag): unbit(s.plc_tag) for s in specs}
        items = [(k, t) for k, t in todo.items() if k not in driver.probed]

        @with_forward_open
        def send(driver: Any, packets: list[Any]) -> list[Any]:
            if len(packets) == 1:
                return [driver.send(packets[0])]
            for packet in packets:
                packet.build_message()
            return list(driver.send(MultiServiceRequestPacket(driver._sequence, packets)).responses)

        for start in range(0, len(items), PROBE_BATCH):
            chunk = items[start : start + PROBE_BATCH]
            packets = [
                Probe(driver._sequence, t, 1, {}, i, False) for i, (_, t) in enumerate(chunk)
            ]
            replies = self._call(send, driver, packets)
            if len(replies) != len(chunk):
                raise ConnectionError(f"{self.cfg.address}: the device answered the probe badly")
            for (key, tag), reply in zip(chunk, replies, strict=True):
                self._learn(key, tag, reply)

    def _learn(self, key: str, tag: str, reply: Any) -> None:
        """Record the type a probe reply names (or why the tag cannot be read)."""
        pycomm3 = require("pycomm3", "enip")
        data = reply.data or b""
        if reply.service_status not in (0, 6) or len(data) < 2:
            self.failed[key] = reply.error or f"no reply data for {tag}"
            return
        code = int.from_bytes(data[:2], "little")
        name = pycomm3.DataTypes.get(code)
        if code == STRUCT_CODE or name is None:
            what = "a structure" if code == STRUCT_CODE else f"of type code 0x{code:04x}"
            self.failed[key] = (
                f"{tag} is {what}: without the controller's tag list only its atomic members "
                "can be read (Tag.Member)"
            )
            return
        element = pycomm3.DataTypes.get_type(code)
        self.failed.pop(key, None)
        self.driver.probed[key] = {
            "tag_name": tag,
            "tag_type": "atomic",
            "data_type": name,
            "data_type_name": name,
            "dim": 1,
            "dimensions": [0, 0, 0],
            "type_class": pycomm3.Array(length_=None, element_type_=element),
        }

    # ---- reading -------------------------------------------------------------------------
    async def read(self) -> list[tuple[TagSpec, Any]]:
        """Every configured tag's pycomm3 ``Tag`` (value, type, error), several per request."""
        return await asyncio.to_thread(self._read, self.tags)

    def _read(self, specs: Sequence[TagSpec]) -> list[tuple[TagSpec, Any]]:
        pycomm3 = require("pycomm3", "enip")
        with self._lock:
            driver = self._alive()
            if self.mode == "probe" and self.failed:  # a tag may have been created meanwhile
                self._probe([s for s in specs if info_key(s.plc_tag) in self.failed])
            ready = [s for s in specs if info_key(s.plc_tag) not in self.failed]
            got = dict(zip(map(id, ready), self._send_read(driver, ready), strict=True))
            return [
                (
                    s,
                    got[id(s)]
                    if id(s) in got
                    else pycomm3.Tag(s.request, None, None, self._why(s)),
                )
                for s in specs
            ]

    def _why(self, spec: TagSpec) -> str:
        return self.failed.get(info_key(spec.plc_tag), "no reply")

    def _send_read(self, driver: Any, specs: Sequence[TagSpec]) -> list[Any]:
        """pycomm3 reads (Multiple Service packets, fragmented above the connection size)."""
        if not specs:
            return []
        results = self._call(driver.read, *[s.request for s in specs])
        results = results if isinstance(results, list) else [results]
        short = [i for i, r in enumerate(results) if "Insufficient Packet Space" in (r.error or "")]
        if short and driver._cfg["connection_size"] > SMALL_CONNECTION:
            # the device answers less than its Forward Open promised (cpppo: 488 bytes), so
            # read big tags in fragments from now on
            driver._cfg["connection_size"] = SMALL_CONNECTION
            again = self._call(driver.read, *[specs[i].request for i in short])
            for i, tag in zip(short, again if isinstance(again, list) else [again], strict=True):
                results[i] = tag
        return list(results)

    def _call(self, fn: Any, *args: Any) -> Any:
        """A pycomm3 call; a connection failure drops the session and raises ConnectionError."""
        try:
            return fn(*args)
        except Exception as exc:
            if not _comm_error(exc):
                raise
            self._discard()
            raise ConnectionError(f"connection to {self.cfg.address} lost: {reason(exc)}") from None

    def _alive(self) -> Any:
        if self.driver is None:
            raise ConnectionError(f"not connected to {self.cfg.address}")
        return self.driver

    # ---- writing -------------------------------------------------------------------------
    async def data_type(self, tag: str) -> str:
        """The Logix type name of ``tag`` (``DINT``; ``BOOL`` for a bit), learnt once."""
        return await asyncio.to_thread(self._data_type, tag)

    def _data_type(self, tag: str) -> str:
        with self._lock:
            info = self._known([tag])[0]
        if BIT.search(tag):
            return "BOOL"
        name = info.get("data_type_name")
        return name if isinstance(name, str) else str(info.get("tag_type"))

    def _known(self, tags: Sequence[str]) -> list[dict[str, Any]]:
        """Each tag's definition (probed first if need be); ValueError for one the device
        does not have, before anything is sent."""
        driver = self._alive()
        specs = [TagSpec(tag=tag) for tag in tags]
        if self.mode == "probe":
            self._probe(specs)
        infos = []
        for spec in specs:
            reason_ = self.failed.get(info_key(spec.plc_tag))
            try:
                infos.append(driver.get_tag_info(unbit(spec.plc_tag)) if not reason_ else {})
            except Exception as exc:
                reason_ = str(exc)
            if reason_:
                raise ValueError(f"cannot write {spec.tag}: {reason_}")
        return infos

    async def write(self, pairs: Sequence[tuple[str, Any]]) -> None:
        """Write ``(tag, value)`` pairs in Multiple Service packets; ValueError names failures."""
        await asyncio.to_thread(self._write, pairs)

    def _write(self, pairs: Sequence[tuple[str, Any]]) -> None:
        if not pairs:
            return
        with self._lock:
            self._known([tag for tag, _ in pairs])
            results = self._call(self.driver.write, *pairs)
        results = results if isinstance(results, list) else [results]
        failed = [f"{t.tag}: {t.error}" for t in results if t.error]
        if failed:
            raise ValueError(f"{len(failed)} write(s) failed: {'; '.join(failed[:5])}")

    # ---- closing -------------------------------------------------------------------------
    async def close(self) -> None:
        """Forward Close and unregister the session; a dead peer is not waited for."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        if self._lock.acquire(timeout=self.cfg.timeout + 1):
            try:
                self._discard(polite=True)
            finally:
                self._lock.release()
        else:  # a request still waits for its reply: cut the socket under it
            self._discard()

    def _discard(self, driver: Any = None, *, polite: bool = False) -> None:
        """Close ``driver`` (this client's by default): politely on a live session, otherwise
        just the socket (pycomm3 would log a traceback for the failed Forward Close)."""
        if driver is None:
            driver, self.driver = self.driver, None
        if driver is None:
            return
        if polite:
            with contextlib.suppress(Exception):
                driver.close()
                return
        sock = driver._sock
        with contextlib.suppress(Exception):
            if sock is not None:
                sock.close()
        driver._sock, driver._connection_opened, driver._target_is_connected = None, False, False
        driver._session = 0
