"""Connection strings for node configs: checked when a flow is validated, not when it runs.

SDK for node types: a config's pydantic validator calls :func:`check_sql_url` or
:func:`check_host_port` (both raise ``ValueError`` with a message for the user), and SQL code
opens engines through :func:`driver_url`, which maps a plain scheme to the driver flowengine
installs (one table for every family).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from flowengine.extras import require
from flowengine.masking import mask_url_password

#: Driver a plain URL scheme maps to: (SQLAlchemy scheme, driver module, flowengine extra).
DRIVERS = {
    "postgresql": ("postgresql+psycopg", "psycopg", "postgres"),
    "postgres": ("postgresql+psycopg", "psycopg", "postgres"),
    "postgresql+psycopg": ("postgresql+psycopg", "psycopg", "postgres"),
    "mysql": ("mysql+pymysql", "pymysql", "mysql"),
    "mariadb": ("mysql+pymysql", "pymysql", "mysql"),
    "mysql+pymysql": ("mysql+pymysql", "pymysql", "mysql"),
    "mariadb+pymysql": ("mysql+pymysql", "pymysql", "mysql"),
}
_SHAPE = "must look like 'dialect://user:pass@host/db'"
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$"
)


def driver_url(url: str) -> str:
    """Map ``postgresql://`` to psycopg 3 and ``mysql://``/``mariadb://`` to pymysql; check the
    driver is installed (else the message names ``flowengine[postgres]``/``[mysql]``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"connection_string {_SHAPE}")
    mapped = DRIVERS.get(scheme.lower())
    if mapped is None:
        return url
    target, module, extra = mapped
    require(module, extra)
    return f"{target}://{rest}"


def check_sql_url(text: str) -> str:
    """``text`` if it is a usable SQLAlchemy URL, else ValueError saying what is wrong.

    Checked: the ``dialect://`` shape, SQLAlchemy's own parse (``make_url``), a known dialect,
    a port in 1..65535, and that a SQLite URL names a file, not a host (``sqlite://b``).
    Drivers need not be installed: that is checked, with its own message, when the flow loads.
    """
    scheme, sep, _rest = text.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+_.-]*", scheme):
        raise ValueError(f"connection string {_SHAPE}")
    try:
        from sqlalchemy.engine import make_url
    except ImportError:  # the sql extra is missing: the node's own check says so
        return text
    try:
        url = make_url(text)
    except ValueError:  # int() of the port
        raise ValueError("invalid port in the connection string: use host:5432") from None
    except Exception as exc:  # ArgumentError; its message quotes the URL, password and all
        raise ValueError(f"invalid connection string: {mask_url_password(str(exc))}") from None
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(f"port {url.port} out of range (1-65535)")
    if url.get_backend_name() == "sqlite":
        if url.host:
            raise ValueError(
                f"a SQLite URL names a file, not a host ('{url.host}'): use sqlite:///out/h.db "
                "(beside the flow), sqlite:////abs/path.db, or sqlite:// (in memory)"
            )
        return text
    _check_dialect(scheme)
    return text


def _check_dialect(scheme: str) -> None:
    """A ValueError when SQLAlchemy knows no dialect ``scheme`` (after the driver mapping)."""
    from sqlalchemy.engine import make_url

    mapped = DRIVERS.get(scheme.lower(), (scheme,))[0]
    try:
        make_url(f"{mapped}://").get_dialect()
    except Exception:
        name = scheme.partition("+")[0]
        raise ValueError(f"unknown database dialect '{name}' in '{scheme}://'") from None


def check_host_port(text: str, *, port_required: bool = True) -> str:
    """``text`` if it is ``host:port`` (a name, an IPv4 address or ``[IPv6]``), else ValueError."""
    _host, port = split_host_port(text)
    if port is None and port_required:
        raise ValueError(f"'{text}' must be host:port (e.g. broker:1883)")
    return text


def split_host_port(text: str) -> tuple[str, int | None]:
    """``("host", port)`` of ``host:port`` or ``host`` (port None); ValueError when malformed."""
    value: Any = text.strip()
    if not value:
        raise ValueError("empty host")
    if value.startswith("["):
        host, close, tail = value[1:].partition("]")
        if not close or (tail and not tail.startswith(":")):
            raise ValueError(f"'{text}': an IPv6 address goes in brackets, like [::1]:4840")
        _check_ip(host, text)
        return host, _port(tail[1:], text) if tail else None
    if value.count(":") > 1:
        raise ValueError(f"'{text}': put an IPv6 address in brackets, like [::1]:4840")
    host, colon, port = value.partition(":")
    if not _HOSTNAME.match(host):
        raise ValueError(f"'{text}': '{host}' is not a host name or address")
    return host, _port(port, text) if colon else None


def _check_ip(host: str, text: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise ValueError(f"'{text}': '{host}' is not an IPv6 address") from None


def _port(port: str, text: str) -> int:
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{text}': port '{port}' must be a number from 1 to 65535")
    return int(port)
