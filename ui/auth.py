"""Who may use the editor: loopback by default, a password for anything else.

The password comes from ``FLOWENGINE_EDITOR_PASSWORD`` and is compared in constant time; a
client that keeps failing is locked out for a while. A login is kept in NiceGUI's
``app.storage.user``, whose browser id travels in a cookie signed with ``storage_secret``
(``FLOWENGINE_EDITOR_SECRET``, or a random one per start, which logs everyone out on restart).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

PASSWORD_ENV = "FLOWENGINE_EDITOR_PASSWORD"
SECRET_ENV = "FLOWENGINE_EDITOR_SECRET"
#: Failed logins a client may make within ``WINDOW`` seconds before it is locked out.
MAX_FAILURES = 5
WINDOW = 300.0
LOCKOUT = 60.0


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


def login_page(guard: Guard, after: str = "/") -> None:
    """The login form; on success the session is marked and the editor opens."""
    from nicegui import app, ui

    client = ui.context.client

    def submit() -> None:
        ok, message = guard.attempt(client.ip, password.value or "")
        if ok:
            app.storage.user["authenticated"] = True
            ui.navigate.to(after)
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
    """True when no login is needed or this browser's signed session has logged in."""
    if not guard.required:
        return True
    from nicegui import app

    return bool(app.storage.user.get("authenticated"))
