"""Who may use the editor: loopback by default, a password for anything else.

The password comes from ``FLOWENGINE_EDITOR_PASSWORD`` and is compared in constant time; a
client IP that keeps failing is locked out for a while. A login is kept in NiceGUI's
``app.storage.user``, whose browser id travels in a cookie signed with ``storage_secret``
(``FLOWENGINE_EDITOR_SECRET``, or a random one per start, which logs everyone out on restart).
What the session holds is a fingerprint of the password (an HMAC keyed with that secret), so a
new password logs every browser out and the session files never reveal the password.

:class:`HostCheck` answers only requests addressed to the editor by a name it was told about,
which defeats DNS rebinding (a web page whose name resolves to 127.0.0.1 driving the editor).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

PASSWORD_ENV = "FLOWENGINE_EDITOR_PASSWORD"
SECRET_ENV = "FLOWENGINE_EDITOR_SECRET"
#: Extra names the editor answers to (comma-separated, ``name`` or ``name:port``).
ALLOWED_HOSTS_ENV = "FLOWENGINE_EDITOR_ALLOWED_HOSTS"
#: Reverse proxies (IPs or networks, comma-separated) whose X-Forwarded-For names the client.
TRUSTED_PROXIES_ENV = "FLOWENGINE_EDITOR_TRUSTED_PROXIES"

# Failed-login limit, per client IP (the IP the editor sees: behind a reverse proxy that is not
# in FLOWENGINE_EDITOR_TRUSTED_PROXIES, every user shares the proxy's IP, and so its lockout).
MAX_FAILURES = 5  # this many failed logins ...
WINDOW = 300.0  # ... within this many seconds lock the IP out ...
LOCKOUT = 60.0  # ... for this many seconds (a right password included).

LOGIN_KEY = "login"  # in app.storage.user: the password fingerprint of the login
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class InsecureBind(Exception):
    """Listening beyond this machine without a password: refused."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; a name or ``0.0.0.0`` is not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def password_from_env(host: str, env: dict[str, str] | None = None) -> str | None:
    """The editor password for listening on ``host``: None on loopback without one set;
    raises :class:`InsecureBind` for any other host without one."""
    env = dict(os.environ) if env is None else env
    password = env.get(PASSWORD_ENV) or None
    if password is None and not is_loopback(host):
        raise InsecureBind(
            f"refusing to listen on {host} without a password: set {PASSWORD_ENV} "
            "(the editor runs flows, and flows can read files and reach the network)"
        )
    return password


def storage_secret(env: dict[str, str] | None = None) -> str:
    """The secret that signs session cookies: from the environment, or random per start."""
    env = dict(os.environ) if env is None else env
    return env.get(SECRET_ENV) or secrets.token_urlsafe(32)


def trusted_proxies(env: dict[str, str] | None = None) -> str:
    """Uvicorn's ``FORWARDED_ALLOW_IPS``: only the proxies named in the environment (by
    default none, so a forged X-Forwarded-For cannot dodge the failed-login limit)."""
    env = dict(os.environ) if env is None else env
    return env.get(TRUSTED_PROXIES_ENV, "").strip()


def password_fingerprint(password: str, secret: str) -> str:
    """What a session keeps of its login: an HMAC of the password keyed with the session
    secret (it changes with either, and reveals neither)."""
    message = b"flowengine-editor-login\0" + password.encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def safe_next(target: str) -> str:
    """``target`` when it is a path on this site, else ``/`` (no open redirect)."""
    parts = urlsplit(target)
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x20 or c == "\x7f" for c in target)
        or parts.scheme
        or parts.netloc
    ):
        return "/"
    return target


def password_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (of digests, so the length leaks nothing either)."""
    a = hashlib.sha256(given.encode()).digest()
    b = hashlib.sha256(expected.encode()).digest()
    return hmac.compare_digest(a, b)


@dataclass(slots=True)
class LoginLimiter:
    """Failed logins per client; ``MAX_FAILURES`` within ``WINDOW`` locks it for ``LOCKOUT``."""

    max_failures: int = MAX_FAILURES
    window: float = WINDOW
    lockout: float = LOCKOUT
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _locked: dict[str, float] = field(default_factory=dict)

    def locked_for(self, client: str) -> float:
        """Seconds until ``client`` may try again (0 when it may now)."""
        until = self._locked.get(client, 0.0)
        return max(0.0, until - self.clock())

    def failed(self, client: str) -> None:
        now = self.clock()
        recent = [t for t in self._failures.get(client, []) if now - t < self.window]
        recent.append(now)
        self._failures[client] = recent
        if len(recent) >= self.max_failures:
            self._locked[client] = now + self.lockout
            self._failures[client] = []

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
        self._locked.pop(client, None)


@dataclass(slots=True)
class Guard:
    """The editor's login check: ``password`` None means no login (loopback only)."""

    password: str | None
    limiter: LoginLimiter = field(default_factory=LoginLimiter)

    @property
    def required(self) -> bool:
        return self.password is not None

    def fingerprint(self, secret: str) -> str:
        """The session mark of a login with the current password ("" when none is needed)."""
        return "" if self.password is None else password_fingerprint(self.password, secret)

    def accepts(self, stored: object, secret: str) -> bool:
        """True when a session's stored mark belongs to the current password and secret."""
        if self.password is None:
            return True
        if not isinstance(stored, str) or not stored:
            return False
        return hmac.compare_digest(stored.encode(), self.fingerprint(secret).encode())

    def attempt(self, client: str, given: str) -> tuple[bool, str]:
        """Check a login; returns (ok, message for the login page)."""
        if self.password is None:
            return True, ""
        wait = self.limiter.locked_for(client)
        if wait > 0:
            return False, f"Too many failed logins: try again in {wait:.0f} s"
        if password_matches(given, self.password):
            self.limiter.succeeded(client)
            return True, ""
        self.limiter.failed(client)
        return False, "Wrong password"


def _session_secret() -> str:
    from nicegui.storage import Storage

    if not Storage.secret:
        raise RuntimeError("the editor needs a storage_secret to keep logins")
    return Storage.secret


def requested_path() -> str:
    """The path (and query) this page was asked for, if it is one of this site's."""
    from nicegui import ui

    url = ui.context.client.request.url
    return safe_next(url.path + (f"?{url.query}" if url.query else ""))


def login_page(guard: Guard, after: str | None = None) -> None:
    """The login form; on success the session is marked and the page asked for opens
    (``after``, by default this request's own path)."""
    from nicegui import app, ui

    client = ui.context.client
    target = safe_next(after if after is not None else requested_path())

    def submit() -> None:
        ok, message = guard.attempt(client.ip, password.value or "")
        if ok:
            app.storage.user[LOGIN_KEY] = guard.fingerprint(_session_secret())
            ui.navigate.to(target)
        else:
            password.value = ""
            error.text = message
            error.visible = True

    with ui.card().classes("absolute-center w-80"):
        ui.label("flowengine editor").classes("text-h6")
        password = ui.input("Password", password=True).props("autofocus").classes("w-full")
        password.on("keydown.enter", submit)
        error = ui.label("").classes("text-negative")
        error.visible = False
        ui.button("Log in", on_click=submit).classes("w-full")


def logged_in(guard: Guard) -> bool:
    """True when no login is needed or this browser's signed session logged in with the
    current password (checked on every page load)."""
    if not guard.required:
        return True
    from nicegui import app

    return guard.accepts(app.storage.user.get(LOGIN_KEY), _session_secret())


def logout() -> None:
    """Forget this browser's login and show the login page (a full reload, not a sub page)."""
    from nicegui import app, ui

    app.storage.user.clear()
    ui.navigate.reload()


def logout_button(guard: Guard, color: str = "white") -> None:
    """A toolbar button that logs out; nothing when the editor has no password."""
    if not guard.required:
        return
    from nicegui import ui

    button = ui.button(icon="logout", on_click=logout).props(f"flat dense color={color}")
    button.tooltip("Log out").mark("logout")


def allowed_hosts(bind: str, port: int, env: dict[str, str] | None = None) -> frozenset[str]:
    """The Host headers the editor answers, as ``name:port`` (``name:*`` for any port) or a
    bare ``name``: loopback names and the address it listens on (with its port, or none as
    a proxy may send), plus ``FLOWENGINE_EDITOR_ALLOWED_HOSTS`` (``name`` allows any port)."""
    env = dict(os.environ) if env is None else env
    names = set(LOOPBACK_NAMES)
    if not is_wildcard(bind):
        names.add(_bracketed(bind.strip().lower()))
    allowed = names | {f"{name}:{port}" for name in names}
    for entry in env.get(ALLOWED_HOSTS_ENV, "").split(","):
        name, entry_port = _split_host(_bracketed(entry.strip().lower()))
        if name:
            allowed.add(f"{name}:{entry_port or '*'}")
    return frozenset(allowed)


def host_allowed(header: str, allowed: frozenset[str]) -> bool:
    """True when a request's Host header is one of ``allowed`` (see :func:`allowed_hosts`)."""
    name, port = _split_host(header.strip().lower())
    if not name:
        return False
    return (f"{name}:{port}" if port else name) in allowed or f"{name}:*" in allowed


def is_wildcard(bind: str) -> bool:
    """True for ``0.0.0.0`` and ``::`` (every address of the machine)."""
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_unspecified
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    """An IPv6 literal as a Host header writes it: in brackets."""
    return f"[{host}]" if host.count(":") > 1 and not host.startswith("[") else host


def _split_host(host: str) -> tuple[str, str]:
    """``name:port`` -> (name without a trailing dot, port or ""); ("", "") if malformed."""
    if host.startswith("["):
        end = host.find("]")
        name, rest = (host[: end + 1], host[end + 1 :]) if end > 0 else ("", "")
    elif host.count(":") > 1:  # an IPv6 literal outside brackets
        name, rest = "", ""
    else:
        name, colon, port = host.partition(":")
        rest = colon + port
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return "", ""
    return name.rstrip("."), rest[1:]


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class HostCheck:
    """ASGI middleware: requests and websocket handshakes (socket.io's too) whose Host header
    names anything else than the editor get 403, so a page on a rebound name cannot reach it."""

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *, allowed: Iterable[str]
    ) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        hosts = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"]
        if len(hosts) == 1 and host_allowed(hosts[0], self.allowed):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # closing before accepting: the handshake gets 403
            await send({"type": "websocket.close", "code": 1008})
            return
        body = (
            b"Forbidden: unknown Host header. The editor answers to loopback names and its "
            b"listening address; add others to FLOWENGINE_EDITOR_ALLOWED_HOSTS.\n"
        )
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})


#: NiceGUI's socket (every event goes over it) and its per-client routes (uploads).
SOCKET_PATH, CLIENT_PATH = "/_nicegui_ws/", "/_nicegui/client/"


def stored_login(session_id: str) -> object:
    """What the user storage of the browser ``session_id`` holds as its login (None when that
    browser has none loaded: it opened no page of this run)."""
    from nicegui import app

    users = getattr(app.storage, "_users", {})  # NiceGUI keeps loaded user storages by id
    storage = users.get(session_id)
    return storage.get(LOGIN_KEY) if storage is not None else None


def client_session(client_id: str) -> str | None:
    """The browser session that loaded the page of NiceGUI client ``client_id`` (None: no
    such client)."""
    from nicegui import Client

    client = Client.instances.get(client_id)
    if client is None or client.request is None:
        return None
    session = client.request.scope.get("session") or {}
    found = session.get("id") if isinstance(session, dict) else None
    return found if isinstance(found, str) else None


class SessionCheck:
    """ASGI middleware tying NiceGUI's socket and uploads to the browser session (with a
    password set; without one the editor is loopback-only and this passes everything).

    NiceGUI routes socket events and uploads by client id alone. Here a socket must name (in
    its query, as NiceGUI's page does) a client whose page this same signed session loaded,
    and an upload must come from a logged-in session that owns the client; anything else gets
    403. :func:`bind_socket_events` then keeps each socket to its own client. Installed
    before ``ui.run``, so it runs inside NiceGUI's session middleware (``scope["session"]``).
    """

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        guard: Guard,
        login_of: Callable[[str], object] = stored_login,
        owner_of: Callable[[str], str | None] = client_session,
    ) -> None:
        self.app = app
        self.guard = guard
        self.login_of = login_of
        self.owner_of = owner_of

    def allows(self, scope: Scope) -> bool:
        """True when the request may pass: not a socket or client route, no password needed,
        or the session owns the client (and, for an upload, is logged in)."""
        path = str(scope.get("path", ""))
        if not self.guard.required or not path.startswith((SOCKET_PATH, CLIENT_PATH)):
            return True
        session = scope.get("session") or {}
        browser = session.get("id") if isinstance(session, dict) else None
        if not isinstance(browser, str):
            return False
        if path.startswith(SOCKET_PATH):  # the login page too: its socket needs no login
            query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
            client_id = (query.get("client_id") or [""])[0]
            return bool(client_id) and self.owner_of(client_id) == browser
        client_id = path[len(CLIENT_PATH) :].partition("/")[0]
        logged = self.guard.accepts(self.login_of(browser), _session_secret())
        return logged and self.owner_of(client_id) == browser

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allows(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b"Forbidden: this needs the browser session that is logged in to the editor.\n"
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def bind_socket_events() -> None:
    """Let a socket send events only to the client it shook hands with (NiceGUI puts it in
    that client's room) instead of to any client id it names. Idempotent."""
    from nicegui import core

    handlers = core.sio.handlers.get("/", {})
    for name in ("event", "javascript_response", "ack", "log"):
        handler = handlers.get(name)
        if handler is None or getattr(handler, "bound_to_socket", False):
            continue

        def bound(sid: str, msg: Any, _handler: Callable[..., Any] = handler) -> Any:
            if isinstance(msg, dict) and msg.get("client_id") in core.sio.rooms(sid):
                return _handler(sid, msg)
            return None

        bound.bound_to_socket = True  # type: ignore[attr-defined]
        core.sio.on(name, bound)


def protect_sockets(app: Any, guard: Guard) -> None:
    """Install :class:`SessionCheck` (before ``ui.run`` adds the session middleware around
    it) and :func:`bind_socket_events`."""
    app.add_middleware(SessionCheck, guard=guard)
    bind_socket_events()
