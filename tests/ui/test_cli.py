"""`flowengine edit`: where it listens, when it refuses, and the login rules behind it."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from flowengine.cli import main
from flowengine.ui.auth import (
    ALLOWED_HOSTS_ENV,
    PASSWORD_ENV,
    SECRET_ENV,
    Guard,
    InsecureBind,
    LoginLimiter,
    is_loopback,
    password_from_env,
    password_matches,
    storage_secret,
)
from tests.helpers.cli import REPO
from tests.helpers.peers import free_port, wait_until

LINE3 = REPO / "flows" / "line3.yaml"


def test_non_loopback_host_without_password_is_refused() -> None:
    env = {PASSWORD_ENV: ""}
    result = CliRunner().invoke(main, ["edit", str(LINE3), "--host", "0.0.0.0"], env=env)
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0 without a password" in result.output
    assert PASSWORD_ENV in result.output


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_no_password(host: str) -> None:
    assert is_loopback(host)
    assert password_from_env(host, {}) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "editor.example"])
def test_other_hosts_need_a_password(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(InsecureBind):
        password_from_env(host, {})
    assert password_from_env(host, {PASSWORD_ENV: "pw"}) == "pw"


def test_password_comparison_and_session_secret() -> None:
    assert password_matches("s3cret", "s3cret")
    assert not password_matches("s3cre", "s3cret")
    assert not password_matches("", "s3cret")
    assert storage_secret({SECRET_ENV: "fixed"}) == "fixed"
    assert storage_secret({}) != storage_secret({})  # random per start


def test_limiter_locks_a_client_out_after_repeated_failures_then_lets_it_back() -> None:
    now = [1000.0]
    guard = Guard(
        "right", LoginLimiter(max_failures=3, window=60, lockout=30, clock=lambda: now[0])
    )
    for _ in range(3):
        assert guard.attempt("10.0.0.1", "wrong") == (False, "Wrong password")
    ok, message = guard.attempt("10.0.0.1", "right")
    assert not ok and message.startswith("Too many failed logins")
    assert guard.attempt("10.0.0.2", "right") == (True, "")  # another client is not locked
    now[0] += 31
    assert guard.attempt("10.0.0.1", "right") == (True, "")


def test_failures_outside_the_window_do_not_add_up() -> None:
    now = [0.0]
    limiter = LoginLimiter(max_failures=3, window=10, lockout=30, clock=lambda: now[0])
    for _ in range(5):
        limiter.failed("c")
        now[0] += 6
    assert limiter.locked_for("c") == 0


def _serve(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "flowengine.cli", "edit", *args],
        cwd=cwd,
        env={k: v for k, v in {**os.environ, **env}.items() if not k.startswith("PYTEST_")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _get(port: int, path: str = "/", host: str | None = None) -> httpx.Response | None:
    headers = {"Host": host} if host else {}
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=2)
    except httpx.HTTPError:
        return None


def _websocket_handshake(port: int, host: str) -> str:
    """The status line a websocket upgrade of socket.io (the editor's live channel) gets."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /_nicegui_ws/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
        f"Host: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        return sock.recv(4096).split(b"\r\n", 1)[0].decode()


@contextmanager
def _editor(tmp_path: Path, host: str, env: dict[str, str]) -> Iterator[int]:
    """``flowengine edit`` on a copy of line3 in a subprocess; yields its port."""
    flow = tmp_path / "line3.yaml"
    flow.write_text(LINE3.read_text())
    port = free_port()
    env = {"NICEGUI_STORAGE_PATH": str(tmp_path / ".nicegui"), **env}
    proc = _serve([str(flow), "--host", host, "--port", str(port), "--no-run"], env, tmp_path)
    try:
        wait_until(lambda: _get(port) is not None or proc.poll() is not None, 60, "the editor")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        yield port
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.parametrize(
    ("host", "env", "expect", "named"),
    [
        ("127.0.0.1", {PASSWORD_ENV: ""}, "Select a node", "localhost:{port}"),
        (
            "0.0.0.0",
            {PASSWORD_ENV: "pw-for-test", ALLOWED_HOSTS_ENV: "editor.example"},
            "Log in",
            "editor.example",
        ),
    ],
)
def test_the_editor_serves_line3_and_asks_for_a_login_beyond_loopback(
    tmp_path: Path, host: str, env: dict[str, str], expect: str, named: str
) -> None:
    with _editor(tmp_path, host, env) as port:
        page = _get(port)
        assert page is not None and page.status_code == 200
        assert expect in page.text
        named_page = _get(port, host=named.format(port=port))
        assert named_page is not None and named_page.status_code == 200
        assert expect in named_page.text


@pytest.mark.parametrize(
    ("host", "env"),
    [
        ("127.0.0.1", {PASSWORD_ENV: ""}),
        ("0.0.0.0", {PASSWORD_ENV: "pw-for-test", ALLOWED_HOSTS_ENV: "editor.example"}),
    ],
)
def test_requests_for_other_host_names_are_refused(
    tmp_path: Path, host: str, env: dict[str, str]
) -> None:
    """DNS rebinding: a page on evil.example, its name now resolving to 127.0.0.1, sends
    requests with ``Host: evil.example:PORT``; neither pages nor socket.io may answer."""
    polling = "/_nicegui_ws/socket.io/?EIO=4&transport=polling"
    with _editor(tmp_path, host, env) as port:
        for forged in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
            for path in ("/", polling):
                refused = _get(port, path, host=forged)
                assert refused is not None and refused.status_code == 403, (forged, path)
                assert "FLOWENGINE_EDITOR_ALLOWED_HOSTS" in refused.text
            assert _websocket_handshake(port, forged).split()[1] == "403", forged
        handshake = _get(port, polling)  # socket.io's own handshake, addressed right
        if env.get(PASSWORD_ENV):  # and then it needs the session of a page too (issue 11)
            assert handshake is not None and handshake.status_code == 403
            assert "logged in" in handshake.text
            assert _websocket_handshake(port, f"127.0.0.1:{port}").split()[1] == "403"
            return
        assert handshake is not None and handshake.status_code == 200
        assert '"sid"' in handshake.text
        assert _websocket_handshake(port, f"127.0.0.1:{port}").split()[1] == "101"


TINY_FLOW = """\
version: 1
nodes:
  src:
    type: inject
    interval: 0.1
    rows: [{sensor: a, value: 1.5}]
    wires: [show]
  show:
    type: debug
"""


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_help_and_run_never_import_nicegui(tmp_path: Path) -> None:
    flow = tmp_path / "tiny.yaml"
    flow.write_text(TINY_FLOW)
    code = f"""
import sys
from click.testing import CliRunner
from flowengine.cli import main

for args in (["--help"], ["edit", "--help"], ["run", {str(flow)!r}, "--for", "0.3"]):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    assert "nicegui" not in sys.modules, args
main(["--help"], standalone_mode=False)
assert "nicegui" not in sys.modules
print("clean")
"""
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("clean")


def test_edit_without_the_editor_extra_says_what_to_install(tmp_path: Path) -> None:
    flow = tmp_path / "tiny.yaml"
    flow.write_text(TINY_FLOW)
    code = f"""
import sys

class NoNiceGUI:
    \"\"\"As if flowengine[editor] were not installed.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name == "nicegui" or name.startswith("nicegui."):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, NoNiceGUI())
from click.testing import CliRunner
from flowengine.cli import main

result = CliRunner().invoke(main, ["edit", {str(flow)!r}, "--port", "{free_port()}"])
print("exit", result.exit_code)
print(result.output)
"""
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "exit 1" in done.stdout
    assert "the editor needs 'flowengine[editor]': No module named 'nicegui'" in done.stdout
