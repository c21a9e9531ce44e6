"""``flowengine secrets`` and ``${secret:NAME}``: the encrypted file beside a flow.

Hostile cases first: a wrong, missing or malformed key, a damaged file, a missing secret; then
that a value never shows (exports, logs, ``list``), the file's mode, concurrent writers, and a
real database connection whose password comes from the file.
"""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
import textwrap
import types
import uuid
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from prometheus_client import generate_latest

from flowengine import logs
from flowengine.envsubst import load_env, substitute
from flowengine.metrics import MetricsServer
from flowengine.secrets import (
    KEY_ENV,
    STORE_NAME,
    DamagedStore,
    MissingSecret,
    NoKey,
    WrongKey,
    new_key,
    read_store,
    remove_secret,
    resolve_secret,
    secrets_cmd,
    set_secret,
)
from flowengine.sqlurl import driver_url
from flowengine.testing import run_flow
from tests.helpers.databases import postgres_missing, scratch_postgres
from tests.helpers.peers import wait_until

VALUE = "Pw0rd-7f3k-secret"  # distinctive: masked as a whole token anywhere in a log line
ERRORS = ("Traceback", VALUE)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh key in FLOWENGINE_SECRETS_KEY for this test."""
    value = new_key()
    monkeypatch.setenv(KEY_ENV, value)
    return value


@pytest.fixture
def env(cli_env: dict[str, str], key: str) -> dict[str, str]:
    """The CLI's environment with the test's key."""
    return {**cli_env, KEY_ENV: key}


def db_flow(folder: Path, url: str = "postgresql://u:${secret:DB_PASSWORD}@db:5432/p") -> Path:
    flow = folder / "line3.yaml"
    flow.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            nodes:
              src: {{type: inject, rows: [{{value: 1.5}}], wires: [db]}}
              db:
                type: sql_out
                connection_string: "{url}"
                table: readings
            """
        )
    )
    return flow


def flowengine(
    *args: str, env: dict[str, str], input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed CLI in a subprocess; stdin is ``input`` (else empty, never a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "flowengine.cli", *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def clean(result: subprocess.CompletedProcess[str]) -> None:
    for text in ERRORS:
        assert text not in result.stdout + result.stderr, result.stderr


# ---- hostile: keys ----------------------------------------------------------------------------
def test_wrong_key_says_what_to_do_never_a_traceback(tmp_path, env):
    flow = db_flow(tmp_path)
    assert (
        flowengine(
            "secrets", "set", "DB_PASSWORD", "--value", VALUE, "--flow", str(flow), env=env
        ).returncode
        == 0
    )
    other = {**env, KEY_ENV: new_key()}
    store = tmp_path / STORE_NAME
    sentence = (
        f"the secrets file {store} was encrypted with another key: set {KEY_ENV} to the key it "
        "was created with, or re-create it with `flowengine secrets set`"
    )
    checked = flowengine("validate", str(flow), env=other)
    assert checked.returncode == 1
    assert f"{flow}:6:5: node 'db': field 'connection_string': {sentence}" in checked.stderr
    ran = flowengine("run", str(flow), "--no-live", env=other)
    assert ran.returncode == 1 and "not started" in ran.stderr and sentence in ran.stderr
    refused = flowengine("secrets", "set", "OTHER", "--value", "x", "--flow", str(flow), env=other)
    assert refused.returncode == 1 and sentence in refused.stderr
    listed = flowengine("secrets", "list", "--flow", str(flow), env=other)
    assert listed.stdout == "DB_PASSWORD\n" and sentence in listed.stderr
    for result in (checked, ran, refused, listed):
        clean(result)
    assert read_store(store).tokens.keys() == {"DB_PASSWORD"}  # the refused set wrote nothing


def test_missing_or_malformed_key(tmp_path, cli_env, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    cli_env.pop(KEY_ENV, None)
    flow = db_flow(tmp_path)
    created = flowengine("secrets", "set", "A", "--value", "x", "--flow", str(flow), env=cli_env)
    assert created.returncode == 1 and "cannot be created without a key" in created.stderr
    assert "flowengine secrets init" in created.stderr and not (tmp_path / STORE_NAME).exists()
    monkeypatch.setenv(KEY_ENV, new_key())
    set_secret(tmp_path / STORE_NAME, "DB_PASSWORD", VALUE)
    checked = flowengine("validate", str(flow), env=cli_env)
    assert checked.returncode == 1
    assert f"{tmp_path / STORE_NAME} needs its key: set {KEY_ENV}" in checked.stderr
    short = flowengine("validate", str(flow), env={**cli_env, KEY_ENV: "hunter2"})
    assert "neither a key from `flowengine secrets init` nor a passphrase" in short.stderr
    for result in (created, checked, short):
        clean(result)


def test_a_passphrase_is_stretched_with_the_file_salt(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "correct horse battery staple")
    store = tmp_path / STORE_NAME
    set_secret(store, "DB_PASSWORD", VALUE)
    assert resolve_secret("DB_PASSWORD", tmp_path / "f.yaml") == VALUE
    monkeypatch.setenv(KEY_ENV, "correct horse battery stapler")
    with pytest.raises(WrongKey):
        resolve_secret("DB_PASSWORD", tmp_path / "f.yaml")


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda d, t: "{not json", "not JSON"),
        (lambda d, t: t[: len(t) // 2], "not JSON"),
        (lambda d, t: json.dumps({**d, "format": "other/9"}), "not a flowengine-secrets/1 file"),
        (lambda d, t: json.dumps({**d, "salt": "short"}), "salt or key check is missing"),
        (lambda d, t: json.dumps({**d, "secrets": {"A": 5}}), "not names and text"),
        (
            lambda d, t: json.dumps({**d, "secrets": {**d["secrets"], "A": "gAAAA" + "x" * 80}}),
            "secret 'A' does not decrypt",
        ),
        (
            lambda d, t: json.dumps(
                {**d, "secrets": {"A": d["secrets"]["B"], "B": d["secrets"]["A"]}}
            ),
            "secret 'A' holds another name's value",
        ),
    ],
)
def test_a_damaged_file_is_named_and_never_a_traceback(tmp_path, key, damage, why):
    store = tmp_path / STORE_NAME
    set_secret(store, "A", "first-value-1")
    set_secret(store, "B", "second-value-2")
    text = store.read_text()
    store.write_text(damage(json.loads(text), text))
    with pytest.raises(DamagedStore, match=why) as err:
        resolve_secret("A", tmp_path / "f.yaml")
    assert f"the secrets file {store} is damaged" in str(err.value)
    assert "restore it from a backup" in str(err.value)


def test_a_damaged_file_in_validate_and_set(tmp_path, env):
    flow = db_flow(tmp_path)
    (tmp_path / STORE_NAME).write_bytes(b"\x00\xff garbage")
    checked = flowengine("validate", str(flow), env=env)
    assert checked.returncode == 1 and "is damaged (not JSON" in checked.stderr
    refused = flowengine("secrets", "set", "X", "--value", "y", "--flow", str(flow), env=env)
    assert refused.returncode == 1 and "is damaged" in refused.stderr
    clean(checked)
    clean(refused)


def test_missing_secret_names_file_line_and_field_like_a_missing_variable(tmp_path, env):
    flow = db_flow(tmp_path, "postgresql://u:${secret:DB_PASSWORD}@${DB_HOST}:5432/p")
    env = {k: v for k, v in env.items() if k != "DB_HOST"}
    none = flowengine("validate", str(flow), env=env)
    store = tmp_path / STORE_NAME
    where = f"{flow}:6:5: node 'db': field 'connection_string': "
    assert none.returncode == 1
    assert (
        where + f"secret 'DB_PASSWORD' is not set: there is no secrets file {store}" in none.stderr
    )
    assert f"`flowengine secrets set DB_PASSWORD --flow {flow}`" in none.stderr
    set_secret(store, "OTHER", "x")
    env["DB_HOST"] = "db"
    other = flowengine("validate", str(flow), env=env)
    assert where + f"secret 'DB_PASSWORD' is not in {store}" in other.stderr
    set_secret(store, "DB_PASSWORD", VALUE)
    assert flowengine("validate", str(flow), env=env).returncode == 0
    # the same place a missing ${VAR} is reported
    del env["DB_HOST"]
    var = flowengine("validate", str(flow), env=env)
    assert where + "environment variable 'DB_HOST' is not set" in var.stderr


def test_a_flow_without_references_never_needs_the_key_nor_cryptography(tmp_path, cli_env):
    flow = tmp_path / "plain.yaml"
    flow.write_text(
        "version: 1\nnodes:\n  a: {type: inject, rows: [{v: 1}], wires: [b]}\n  b: {type: debug}\n"
    )
    (tmp_path / STORE_NAME).write_text("{damaged")
    cli_env.pop(KEY_ENV, None)
    code = (
        "import sys; from flowengine.validate import load_flow;"
        "from flowengine.registry import default_registry;"
        f"c = load_flow({str(flow)!r}, default_registry());"
        "print(c.ok, 'cryptography' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env)
    assert out.stdout.split() == ["True", "False"], out.stderr


# ---- a value never shows ------------------------------------------------------------------
def test_export_keeps_the_reference_never_the_value(tmp_path, env):
    flow = db_flow(tmp_path)
    set_secret(tmp_path / STORE_NAME, "DB_PASSWORD", VALUE)
    for fmt in ("yaml", "json"):
        exported = flowengine("export", str(flow), "--format", fmt, env=env)
        assert exported.returncode == 0, exported.stderr
        assert "${secret:DB_PASSWORD}" in exported.stdout and VALUE not in exported.stdout


def test_a_run_whose_node_logs_the_value_shows_it_masked(tmp_path, env):
    flow = tmp_path / "leak.yaml"
    flow.write_text(
        textwrap.dedent(
            """\
            version: 1
            nodes:
              src: {type: inject, rows: [{token: "${secret:API_TOKEN}", n: 1}], wires: [dbg]}
              dbg: {type: debug, level: warning}
            """
        )
    )
    set_secret(tmp_path / STORE_NAME, "API_TOKEN", VALUE)
    for fmt in ("text", "json"):
        ran = flowengine("run", str(flow), "--no-live", "--log-format", fmt, env=env)
        assert ran.returncode == 0, ran.stderr
        assert "******" in ran.stderr and "1 rows from 'src'" in ran.stderr
        clean(ran)


def test_resolved_values_are_registered_for_masking(tmp_path, key, monkeypatch):
    monkeypatch.setattr(logs, "_secrets", {})
    set_secret(tmp_path / STORE_NAME, "API_TOKEN", VALUE)
    assert logs.redact(f"sent {VALUE} upstream") == f"sent {VALUE} upstream"  # not yet read
    assert substitute("x ${secret:API_TOKEN}", load_env(tmp_path / "f.yaml")) == f"x {VALUE}"
    assert logs.redact(f"sent {VALUE} upstream") == "sent ****** upstream"


def test_a_secret_in_a_url_password_is_url_encoded_and_cannot_move_the_host(
    tmp_path, key, monkeypatch
):
    """The documented ``postgresql://writer:${secret:DB_PASSWORD}@db:5432/plant`` with a
    generated password holding URL-reserved characters must still connect to ``db``."""
    monkeypatch.setattr(logs, "_secrets", {})
    password = "K9@evil.example:5432/x#1?%"
    set_secret(tmp_path / STORE_NAME, "DB_PASSWORD", password)
    monkeypatch.setenv("PLAIN", password)
    env = load_env(tmp_path / "f.yaml")
    url = substitute("postgresql://writer:${secret:DB_PASSWORD}@db:5432/plant", env)
    parsed = sa.engine.make_url(url)
    assert (parsed.host, parsed.port, parsed.database) == ("db", 5432, "plant")
    assert (parsed.username, parsed.password) == ("writer", password)
    # a user name from the file is userinfo too
    set_secret(tmp_path / STORE_NAME, "DB_USER", "ops@plant")
    parsed = sa.engine.make_url(substitute("mysql://${secret:DB_USER}@db/p", env))
    assert (parsed.username, parsed.host) == ("ops@plant", "db")
    # untouched: a ${VAR} (the writer may have encoded it), text that is no URL's userinfo
    assert substitute("postgresql://u:${PLAIN}@db/p", env) == f"postgresql://u:{password}@db/p"
    assert substitute("pw=${secret:DB_PASSWORD};", env) == f"pw={password};"
    query = "postgresql://u@db/p?password=${secret:DB_PASSWORD}"
    assert substitute(query, env) == f"postgresql://u@db/p?password={password}"
    assert substitute("${secret:DB_PASSWORD}", env) == password


def test_list_prints_names_only(tmp_path, env):
    store = tmp_path / STORE_NAME
    for name, value in (("B_TOKEN", VALUE), ("A_PASSWORD", "other-Value-9")):
        result = flowengine("secrets", "set", name, "--file", str(store), env=env, input=value)
        assert result.returncode == 0, result.stderr
    listed = flowengine("secrets", "list", "--file", str(store), env=env)
    assert listed.returncode == 0 and listed.stdout == "A_PASSWORD\nB_TOKEN\n"
    assert listed.stderr == ""  # the key opens them: no warning
    raw = store.read_text()
    for value in (VALUE, "other-Value-9"):
        assert value not in listed.stdout + listed.stderr and value not in raw
    assert base64.b64encode(VALUE.encode()).decode() not in raw


# ---- the file -----------------------------------------------------------------------------
def test_set_replace_rm_round_trip(tmp_path, env):
    flow = db_flow(tmp_path)
    run = lambda *a, **k: flowengine("secrets", *a, "--flow", str(flow), env=env, **k)  # noqa: E731
    assert run("set", "DB_PASSWORD", input="first-Value-1\n").returncode == 0
    assert resolve_secret("DB_PASSWORD", flow) == "first-Value-1"  # stdin's newline dropped
    assert run("set", "DB_PASSWORD", "--value", VALUE).returncode == 0
    assert resolve_secret("DB_PASSWORD", flow) == VALUE
    assert run("list").stdout == "DB_PASSWORD\n"
    removed = run("rm", "DB_PASSWORD")
    assert (
        removed.returncode == 0
        and f"removed DB_PASSWORD from {tmp_path / STORE_NAME}" in removed.stderr
    )
    again = run("rm", "DB_PASSWORD")
    assert again.returncode == 1 and "no secret 'DB_PASSWORD'" in again.stderr
    assert run("list").stdout == ""
    bad = run("set", "bad-name", "--value", "x")
    assert bad.returncode == 1 and "is not a secret name" in bad.stderr
    empty = run("set", "EMPTY", input="")
    assert empty.returncode == 1 and "empty value" in empty.stderr
    both = flowengine("secrets", "list", "--flow", str(flow), "--file", "x", env=env)
    assert both.returncode == 2


def test_rm_needs_no_key(tmp_path, key, monkeypatch):
    store = tmp_path / STORE_NAME
    set_secret(store, "A", "x")
    monkeypatch.setenv(KEY_ENV, new_key())
    assert remove_secret(store, "A") and not remove_secret(store, "A")
    assert not remove_secret(tmp_path / "nowhere" / STORE_NAME, "A")


def test_the_file_is_0600_and_replaced_atomically(tmp_path, key):
    store = tmp_path / STORE_NAME
    set_secret(store, "A", "x")
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    store.chmod(0o644)  # a copy that lost its mode comes back private on the next write
    before = store.stat().st_ino
    set_secret(store, "B", "y")
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert store.stat().st_ino != before  # a new file renamed over the old, never rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == [STORE_NAME]  # no temporary left


WRITER = """
import sys, time
from pathlib import Path
from flowengine.secrets import set_secret
store, tag, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
(go.parent / f"ready-{tag}").touch()
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.001)
for i in range(25):
    set_secret(store, f"{tag}_{i}", f"value-{tag}-{i}")
"""


def test_concurrent_set_from_two_processes_loses_nothing(tmp_path, env):
    store, go = tmp_path / "shared" / STORE_NAME, tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store), tag, str(go)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("A", "B")
    ]
    try:
        wait_until(lambda: all((tmp_path / f"ready-{t}").exists() for t in "AB"), what="writers")
        go.touch()
        errors = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], errors
    names = read_store(store).tokens
    assert len(names) == 50
    assert resolve_secret("B_24", tmp_path / "shared" / "f.yaml") == "value-B-24"


# ---- key sources --------------------------------------------------------------------------
def test_init_prints_a_usable_key(tmp_path, cli_env):
    made = flowengine("secrets", "init", env=cli_env)
    assert made.returncode == 0 and f"set it as {KEY_ENV}" in made.stderr
    key = made.stdout.strip()
    assert len(base64.urlsafe_b64decode(key)) == 32
    flow = db_flow(tmp_path)
    env = {**cli_env, KEY_ENV: key}
    assert (
        flowengine(
            "secrets", "set", "DB_PASSWORD", "--value", VALUE, "--flow", str(flow), env=env
        ).returncode
        == 0
    )
    assert flowengine("validate", str(flow), env=env).returncode == 0


def test_the_os_keyring_holds_the_key_when_the_variable_is_unset(tmp_path, monkeypatch):
    """Only our glue: ``keyring`` is not installed here, so a dict plays the OS keyring."""
    held: dict[tuple[str, str], str] = {}
    fake = types.ModuleType("keyring")
    fake.__spec__ = ModuleSpec("keyring", None)
    fake.get_password = lambda s, u: held.get((s, u))  # type: ignore[attr-defined]
    fake.set_password = lambda s, u, p: held.__setitem__((s, u), p)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", fake)
    monkeypatch.delenv(KEY_ENV, raising=False)
    runner = CliRunner()
    assert runner.invoke(secrets_cmd, ["init", "--keyring"]).exit_code == 0
    first = dict(held)
    refused = runner.invoke(secrets_cmd, ["init", "--keyring"])
    assert refused.exit_code == 1 and "--force" in refused.output and held == first
    set_secret(tmp_path / STORE_NAME, "A", VALUE)
    assert resolve_secret("A", tmp_path / "f.yaml") == VALUE
    assert runner.invoke(secrets_cmd, ["init", "--keyring", "--force"]).exit_code == 0
    with pytest.raises(WrongKey, match="the key tried came from the OS keyring"):
        resolve_secret("A", tmp_path / "f.yaml")
    monkeypatch.delitem(sys.modules, "keyring")
    with pytest.raises(NoKey):
        resolve_secret("A", tmp_path / "f.yaml")


def test_every_subcommand_has_help():
    for command in ([], ["init"], ["set"], ["list"], ["rm"]):
        result = CliRunner().invoke(secrets_cmd, [*command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output


def test_a_flow_checked_without_a_file_has_no_secrets():
    with pytest.raises(MissingSecret, match="this flow has no file"):
        substitute("${secret:A}", {"A": "not a secret"})


# ---- a real connection ------------------------------------------------------------------
def test_sqlite_url_from_the_file(tmp_path, key):
    db = tmp_path / "out.db"
    set_secret(tmp_path / STORE_NAME, "DB_URL", f"sqlite:///{db}")
    flow = tmp_path / "f.yaml"
    nodes = {
        "src": {"type": "inject", "rows": [{"value": 1.5}], "wires": ["db"]},
        "db": {"type": "sql_out", "connection_string": "${secret:DB_URL}", "table": "r"},
    }
    result = run_flow(nodes, path=flow, env=load_env(flow))
    assert result.report.errors == 0
    scraped = generate_latest(MetricsServer(result.runtime, 0).registry).decode()
    assert 'type="sql_out"' in scraped and str(db) not in scraped  # /metrics: ids and counts
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM r")).scalar() == 1.5
    engine.dispose()


@pytest.mark.skipif(postgres_missing() is not None, reason=str(postgres_missing()))
def test_postgres_password_from_the_file_connects(tmp_path, key, monkeypatch):
    monkeypatch.setattr(logs, "_secrets", {})
    set_secret(tmp_path / STORE_NAME, "DB_PASSWORD", VALUE)
    flow = tmp_path / "f.yaml"
    table = f"fe_{uuid.uuid4().hex[:8]}"
    with scratch_postgres() as url:
        with_password = url.replace("postgres@", "postgres:${secret:DB_PASSWORD}@")
        nodes = {
            "src": {"type": "inject", "rows": [{"value": 2.5}], "wires": ["db"]},
            "db": {"type": "sql_out", "connection_string": with_password, "table": table},
        }
        result = run_flow(nodes, path=flow, env=load_env(flow))
        assert result.report.errors == 0
        engine = sa.create_engine(driver_url(url))
        with engine.connect() as conn:
            assert conn.execute(sa.text(f"SELECT value FROM {table}")).scalar() == 2.5
        engine.dispose()
    assert logs.redact(f"login {VALUE} refused") == "login ****** refused"
