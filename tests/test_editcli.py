"""`flowengine edit`: where it listens, when it refuses, and the login rules behind it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from flowengine.ui.auth import (
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

from flowengine.cli import main
from tests.conftest import REPO
from tests.peers import free_port, wait_until

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


def _get(port: int) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    except httpx.HTTPError:
        return None


@pytest.mark.parametrize(
    ("host", "password", "expect"),
    [("127.0.0.1", "", "Select a node"), ("0.0.0.0", "pw-for-test", "Log in")],
)
def test_the_editor_serves_line3_and_asks_for_a_login_beyond_loopback(
    tmp_path: Path, host: str, password: str, expect: str
) -> None:
    flow = tmp_path / "line3.yaml"
    flow.write_text(LINE3.read_text())
    port = free_port()
    env = {PASSWORD_ENV: password, "NICEGUI_STORAGE_PATH": str(tmp_path / ".nicegui")}
    proc = _serve([str(flow), "--host", host, "--port", str(port), "--no-run"], env, tmp_path)
    try:
        wait_until(lambda: _get(port) is not None or proc.poll() is not None, 60, "the editor")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        page = _get(port)
        assert page is not None and page.status_code == 200
        assert expect in page.text
    finally:
        proc.terminate()
        proc.wait(20)
