"""The `flowengine` command as a user runs it: exit codes, signals, metrics, export, secrets."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.cli import flowengine

REPO = Path(__file__).resolve().parents[2]


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flowengine.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_every_command_has_help(cli_env):
    for command in ([], ["run"], ["validate"], ["nodes"], ["export"]):
        result = flowengine(*command, "--help", env=cli_env)
        assert result.returncode == 0
        assert "Usage:" in result.stdout and len(result.stdout) > 200


def test_validate_exit_codes(cli_env, tmp_path):
    good = REPO / "flows" / "line3.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nnodes:\n  a: {type: inject, wires: [gone]}\n")
    ok = flowengine("validate", str(good), env=cli_env)
    assert ok.returncode == 0, ok.stderr
    assert f"{good}: ok" in ok.stdout and f"{good}: ok" not in ok.stderr
    both = flowengine("validate", str(good), str(bad), env=cli_env)
    assert both.returncode == 1
    assert f"{bad}:3:29: node 'a': wire to missing node 'gone'" in both.stderr
    assert flowengine("validate", str(tmp_path / "nope.yaml"), env=cli_env).returncode == 2
    assert flowengine("validate", env=cli_env).returncode == 2
    assert flowengine("run", str(bad), env=cli_env).returncode == 1


def test_validate_checks_the_tests_beside_a_flow(cli_env, tmp_path):
    flow = tmp_path / "line.yaml"
    flow.write_text(
        "version: 1\nnodes:\n  a: {type: inject, rows: [{v: 1}], wires: [b]}\n  b: {type: debug}\n"
    )
    tests = tmp_path / "line.test.yaml"
    tests.write_text("cases:\n  - name: typo\n    expect: {bb: {no_output: true}}\n")
    done = flowengine("validate", str(flow), env=cli_env)
    assert done.returncode == 1
    assert (
        f"{tests}:3:14: case 'typo': 'expect.bb': no node 'bb' in {flow} (did you mean 'b'?)"
        in done.stderr
    )
    assert f"{flow}: 1 error(s), 0 warning(s), 2 nodes" in done.stdout
    tests.write_text("cases:\n  - name: fixed\n    expect: {b: {row_count: 1}}\n")
    done = flowengine("validate", str(flow), str(tests), env=cli_env)
    assert done.returncode == 0, done.stderr
    assert f"{flow}: ok, 0 warning(s), 2 nodes, 1 test case(s)" in done.stdout
    assert f"{tests}: ok, 0 warning(s), 1 test case(s)" in done.stdout


def test_broken_yaml_never_shows_a_traceback(cli_env, tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("version: 1\nnodes:\n  a: [unclosed\n")
    for command in ("validate", "run", "export"):
        result = flowengine(command, str(bad), env=cli_env)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert f"{bad}:" in result.stderr and "invalid YAML" in result.stderr


def slow_flow(tmp_path: Path, out: Path, extra: str = "") -> Path:
    flow = tmp_path / "slow.yaml"
    flow.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            nodes:
              t: {{type: tick, rows: 10, report: {out}.read, wires: [x3]}}
              x3: {{type: triple, wires: [s]}}
              s: {{type: slowfile, path: {out}, delay: 0.002, queue_size: 2}}
            """
        )
        + extra
    )
    return flow


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_stream_drains_every_row(cli_env, tmp_path, signum):
    out = tmp_path / "rows.txt"
    proc = start(
        ["run", str(slow_flow(tmp_path, out)), "--no-live", "--log-format", "json"], cli_env
    )
    try:
        wait_for(lambda: out.exists() and len(out.read_text().split()) >= 200, what="rows")
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    records = [json.loads(line) for line in stderr.splitlines()]
    final = next(r for r in reversed(records) if r["message"].startswith("stopped after"))
    sent = int(re.search(r"(\d+) rows read", final["message"]).group(1))
    read = int(Path(f"{out}.read").read_text())  # counted by the source itself
    written = out.read_text().split()
    assert read == sent == len(written) > 200
    assert written == [str(i) for i in range(read)]


def test_run_for_seconds_with_metrics_and_healthz(cli_env, tmp_path):
    out = tmp_path / "rows.txt"
    proc = start(
        ["run", str(slow_flow(tmp_path, out)), "--no-live", "--metrics-port", "0"], cli_env
    )
    try:
        port = None
        assert proc.stderr is not None
        for line in proc.stderr:
            if match := re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line):
                port = int(match.group(1))
                break
        assert port
        wait_for(lambda: out.exists(), what="first rows")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            health = json.loads(resp.read())
        assert resp.status == 200 and health["nodes"] == {"t": "ok", "x3": "ok", "s": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        rows = re.search(r'flowengine_node_rows_out_total\{node="t",type="tick"\} (\S+)', text)
        assert rows and float(rows.group(1)) > 0
        assert re.search(r'flowengine_queue_capacity\{from="x3",node="s",port="out"\} 2\.0', text)
        assert 'flowengine_node_state{node="s",state="ok",type="slowfile"} 1.0' in text
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0


def test_run_for_ends_by_itself(cli_env, tmp_path):
    out = tmp_path / "rows.txt"
    result = flowengine(
        "run", str(slow_flow(tmp_path, out)), "--for", "0.5", "--no-live", env=cli_env
    )
    assert result.returncode == 0, result.stderr
    assert "stopped after" in result.stderr


def test_secrets_never_reach_logs_or_exports(cli_env, tmp_path):
    flow = tmp_path / "secret.yaml"
    flow.write_text(
        textwrap.dedent(
            """\
            version: 1
            nodes:
              t: {type: tick, count: 2, wires: [a, b]}
              a:
                type: login
                password: hunter2-literal   # a literal: masked on export
              b:
                type: login
                password: ${PLC_PASSWORD}
            """
        )
    )
    cli_env["PLC_PASSWORD"] = "s3cret-from-env"
    result = flowengine("run", str(flow), "--no-live", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "login operator:****** refused" in result.stderr
    assert "hunter2" not in result.stderr and "s3cret" not in result.stderr
    for fmt in ("yaml", "json"):
        exported = flowengine("export", str(flow), "--format", fmt, env=cli_env)
        assert exported.returncode == 0, exported.stderr
        assert "hunter2" not in exported.stdout and "s3cret" not in exported.stdout
        assert "${PLC_PASSWORD}" in exported.stdout and "******" in exported.stdout
    yaml_out = flowengine("export", str(flow), env=cli_env).stdout
    assert "# a literal: masked on export" in yaml_out


def test_export_formats(cli_env, tmp_path):
    line3 = REPO / "flows" / "line3.yaml"
    mermaid = flowengine("export", str(line3), "--format", "mermaid", env=cli_env).stdout
    assert mermaid.startswith("flowchart LR\n")
    assert "plc --> features" in mermaid and "plc([" in mermaid
    dot = flowengine("export", str(line3), "-f", "dot", env=cli_env).stdout
    assert dot.startswith("digraph") and '"plc" -> "features";' in dot
    target = tmp_path / "line3.json"
    shutil.copytree(REPO / "flows" / "models", tmp_path / "models")  # the model it names
    assert (
        flowengine("export", str(line3), "-f", "json", "-o", str(target), env=cli_env).returncode
        == 0
    )
    data = json.loads(target.read_text())
    assert data["nodes"]["plc"]["type"] == "simulate"
    # the JSON export is a flow in its own right
    assert flowengine("validate", str(target), env=cli_env).returncode == 0
    assert flowengine("export", str(line3), env=cli_env).stdout == line3.read_text()


def test_export_of_an_invalid_flow_says_so_and_bad_output_path_is_clean(cli_env, tmp_path):
    flow = tmp_path / "half.yaml"
    flow.write_text("version: 1\nnodes:\n  a: {type: injekt}\n")
    result = flowengine("export", str(flow), "-f", "mermaid", env=cli_env)
    assert result.returncode == 0 and "a[" in result.stdout
    assert "unknown node type 'injekt'" in result.stderr
    bad = flowengine("export", str(flow), "-o", str(tmp_path / "no" / "dir.yaml"), env=cli_env)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "Could not open file" in bad.stderr


def test_for_must_be_finite(cli_env):
    result = flowengine("run", str(REPO / "flows" / "line3.yaml"), "--for", "nan", env=cli_env)
    assert result.returncode == 2 and "finite" in result.stderr


def test_a_json_flow_runs(cli_env, tmp_path):
    out = tmp_path / "rows.txt"
    flow = tmp_path / "flow.json"
    flow.write_text(
        json.dumps(
            {
                "version": 1,
                "nodes": {
                    "t": {"type": "tick", "count": 2, "rows": 3, "wires": ["s"]},
                    "s": {"type": "slowfile", "path": str(out), "delay": 0},
                },
            }
        )
    )
    result = flowengine("run", str(flow), "--no-live", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert out.read_text().split() == [str(i) for i in range(6)]
