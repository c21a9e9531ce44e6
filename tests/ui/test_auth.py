"""The editor's login (ui/auth.py): logout, password fingerprints, landing on the page asked
for, and the rules behind them (safe redirects, Host names, trusted proxies)."""

from __future__ import annotations

from pathlib import Path

import pytest
from nicegui import app
from nicegui.storage import Storage
from nicegui.testing import User

from flowengine.ui.app import Editor, EditorConfig
from flowengine.ui.auth import (
    ALLOWED_HOSTS_ENV,
    LOGIN_KEY,
    TRUSTED_PROXIES_ENV,
    Guard,
    SessionCheck,
    allowed_hosts,
    bind_socket_events,
    host_allowed,
    password_fingerprint,
    safe_next,
    trusted_proxies,
)
from tests.helpers.samples import SAMPLE
from tests.helpers.uiuser import editing, run, storage_in_tmp  # noqa: F401  (autouse fixture)

PASSWORD = "s3cret!"


@pytest.fixture
def line3(tmp_path: Path) -> Path:
    path = tmp_path / "line3.yaml"
    path.write_text(SAMPLE)
    return path


async def log_in(user: User, password: str) -> None:
    await user.should_see("Log in")
    user.find("Password").type(password)
    user.find("Log in").click()


def stored_text() -> str:
    """Everything NiceGUI wrote of the sessions to disk."""
    return "".join(p.read_text() for p in Storage.path.rglob("*") if p.is_file())


def test_logout_clears_the_session_and_shows_the_login_page(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, password=PASSWORD, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await log_in(user, PASSWORD)
            await user.should_see(marker="canvas")
            user.find(marker="logout").click()
            await user.should_see("Log in")
            await user.should_not_see(marker="canvas")
            await user.open("/")  # the session itself is logged out, not just this page
            await user.should_see("Log in")
            await user.should_not_see(marker="canvas")

    run(scenario)


def test_no_logout_button_without_a_password(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await user.should_see(marker="canvas")
            await user.should_not_see(marker="logout")

    run(scenario)


def test_folder_page_has_a_logout_button_with_a_password(tmp_path: Path) -> None:
    (tmp_path / "line3.yaml").write_text(SAMPLE)
    editor = Editor(EditorConfig(tmp_path, password=PASSWORD, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await log_in(user, PASSWORD)
            await user.should_see("line3.yaml")
            user.find(marker="logout").click()
            await user.should_see("Log in")
            await user.should_not_see("line3.yaml")

    run(scenario)


def test_a_new_password_logs_every_session_out(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, password="old password", run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            await log_in(user, "old password")
            await user.should_see(marker="canvas")
            secret = Storage.secret
            assert secret
            on_disk = stored_text()
            assert "old password" not in on_disk  # only its keyed fingerprint
            assert password_fingerprint("old password", secret) in on_disk
            # a restart with the same secret and password: the session is still logged in
            editor.guard = Guard("old password")
            await user.open("/")
            await user.should_see(marker="canvas")
            # a restart with a new FLOWENGINE_EDITOR_PASSWORD (same secret, same session)
            editor.guard = Guard("new password")
            await user.open("/")
            await user.should_see("Log in")
            await user.should_not_see(marker="canvas")
            await log_in(user, "new password")
            await user.should_see(marker="canvas")

    run(scenario)


def test_a_session_marked_the_old_way_must_log_in(line3: Path) -> None:
    editor = Editor(EditorConfig(line3, password=PASSWORD, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/")
            with user:
                app.storage.user["authenticated"] = True  # before fingerprints
                app.storage.user[LOGIN_KEY] = "0" * 64
            await user.open("/")
            await user.should_see("Log in")
            await user.should_not_see(marker="canvas")

    run(scenario)


def test_login_lands_on_the_flow_that_was_asked_for(tmp_path: Path) -> None:
    (tmp_path / "line3.yaml").write_text(SAMPLE)
    (tmp_path / "other.yaml").write_text(SAMPLE)
    editor = Editor(EditorConfig(tmp_path, password=PASSWORD, run=False))

    async def scenario() -> None:
        async with editing(editor) as user:
            await user.open("/edit/other.yaml")
            await user.should_not_see(marker="canvas")
            await log_in(user, PASSWORD)
            await user.should_see(marker="canvas")
            assert editor.model is not None and editor.model.path.name == "other.yaml"
            assert user.back_history[-1] == "/edit/other.yaml"

    run(scenario)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", "/"),
        ("/edit/line3.yaml", "/edit/line3.yaml"),
        ("/edit/a%20b.yaml?x=1", "/edit/a%20b.yaml?x=1"),
        ("//evil.example/", "/"),
        ("///evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("\\\\evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
        ("/edit/x\r\nSet-Cookie: a=b", "/"),
        ("", "/"),
    ],
)
def test_only_same_site_paths_are_redirect_targets(target: str, expected: str) -> None:
    assert safe_next(target) == expected


def test_fingerprint_depends_on_password_and_secret_and_hides_both() -> None:
    a = password_fingerprint("pw", "secret-1")
    assert a == password_fingerprint("pw", "secret-1")
    assert a != password_fingerprint("pw2", "secret-1")
    assert a != password_fingerprint("pw", "secret-2")
    assert "pw" not in a and "secret" not in a and len(a) == 64
    guard = Guard("pw")
    assert guard.accepts(a, "secret-1")
    assert not guard.accepts(a, "secret-2")
    for stored in (None, "", True, "pw", a[:-1]):
        assert not guard.accepts(stored, "secret-1")
    assert Guard(None).accepts(None, "secret-1")  # no password: nothing to check


def test_allowed_hosts_on_loopback() -> None:
    allowed = allowed_hosts("127.0.0.1", 8080, {})
    for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST:8080", "localhost"):
        assert host_allowed(host, allowed), host
    for host in (
        "evil.example:8080",  # a DNS-rebound name
        "evil.example",
        "127.0.0.1:9999",  # another port
        "localhost.evil.example:8080",
        "127.0.0.1:8080@evil.example",
        "::1",  # IPv6 outside brackets is no Host
        "[::1",
        "localhost:",
        "",
    ):
        assert not host_allowed(host, allowed), host


def test_allowed_hosts_beyond_loopback_come_from_the_listening_address_and_the_env() -> None:
    assert host_allowed("192.168.1.5:8080", allowed_hosts("192.168.1.5", 8080, {}))
    assert host_allowed("[fe80::1]:8080", allowed_hosts("fe80::1", 8080, {}))
    wildcard = allowed_hosts("0.0.0.0", 8080, {})
    assert not host_allowed("0.0.0.0:8080", wildcard)
    assert not host_allowed("192.168.1.5:8080", wildcard)
    env = {ALLOWED_HOSTS_ENV: " Editor.Example , 192.168.1.5:8080,::5 ,"}
    allowed = allowed_hosts("0.0.0.0", 8080, env)
    for host in ("editor.example", "editor.example:443", "192.168.1.5:8080", "[::5]:1"):
        assert host_allowed(host, allowed), host
    for host in ("192.168.1.5:8081", "192.168.1.5", "evil.example:8080"):
        assert not host_allowed(host, allowed), host


def test_x_forwarded_for_is_believed_only_from_named_proxies() -> None:
    assert trusted_proxies({}) == ""  # uvicorn trusts nobody (its default is 127.0.0.1)
    assert trusted_proxies({TRUSTED_PROXIES_ENV: " 10.0.0.7,10.1.0.0/16 "}) == (
        "10.0.0.7,10.1.0.0/16"
    )


def test_a_socket_sends_events_only_to_the_client_it_shook_hands_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nicegui import core

    handlers = core.sio.handlers.setdefault("/", {})
    seen: list[str] = []
    for name in ("event", "javascript_response", "ack", "log"):  # restored afterwards
        monkeypatch.setitem(handlers, name, lambda sid, msg: seen.append(msg["client_id"]))
    monkeypatch.setattr(core.sio, "rooms", lambda sid, namespace=None: [sid, "mine"])
    bind_socket_events()
    bind_socket_events()  # idempotent: wrapped once
    handlers["event"]("sid-1", {"client_id": "victim"})  # a client id it only names
    handlers["event"]("sid-1", {"client_id": "mine"})
    handlers["javascript_response"]("sid-1", {"client_id": "victim"})
    assert seen == ["mine"]


def check(guard: Guard, path: str, session: dict[str, str] | None, query: str = "") -> bool:
    """Whether :class:`SessionCheck` lets a request through (alice owns client c1 and is
    logged in; bob owns c2 and is not)."""
    logins = {"alice": guard.fingerprint(Storage.secret or "")}
    owners = {"c1": "alice", "c2": "bob"}

    async def inner(scope: object, receive: object, send: object) -> None: ...

    middleware = SessionCheck(inner, guard=guard, login_of=logins.get, owner_of=owners.get)
    scope = {"type": "http", "path": path, "query_string": query.encode()}
    if session is not None:
        scope["session"] = session
    return middleware.allows(scope)


def test_socket_and_upload_routes_need_the_session_that_owns_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Storage, "secret", "test-secret")
    guard = Guard(PASSWORD)
    alice, bob = {"id": "alice"}, {"id": "bob"}
    socket, upload = "/_nicegui_ws/socket.io/", "/_nicegui/client/c1/upload/5"
    assert check(guard, socket, alice, "EIO=4&client_id=c1")
    assert check(guard, socket, bob, "EIO=4&client_id=c2")  # the login page's own socket
    assert not check(guard, socket, bob, "EIO=4&client_id=c1")  # another's client
    assert not check(guard, socket, alice, "EIO=4")  # no client named
    assert not check(guard, socket, None, "EIO=4&client_id=c1")  # no session
    assert check(guard, upload, alice)
    assert not check(guard, upload, bob)
    assert not check(guard, "/_nicegui/client/c2/upload/5", bob)  # owner, not logged in
    assert check(guard, "/", None)  # pages themselves are guarded by the login page
    assert check(Guard(None), upload, None)  # loopback without a password: as before
