"""Connection strings and host:port fields are checked by ``flowengine validate``, at their line;
the shipped flows, the docs' examples and the seed document's settings all still validate."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowengine.testing import check_text
from tests.helpers.cli import REPO, flowengine

#: The node types whose connection fields are checked.
CONNECTORS = ("sql_in", "sql_out", "mqtt_in", "mqtt_out", "opcua_in", "opcua_out", "rest_in")
BAD = """\
version: 1
nodes:
  src:
    type: sql_in
    connection_string: {url}
    query: SELECT 1
    polls: 1
    wires: [out]
  out: {{type: debug}}
"""


def validate(tmp_path: Path, text: str, **env: str) -> tuple[int, str]:
    path = tmp_path / "flow.yaml"
    path.write_text(text)
    base = {k: v for k, v in os.environ.items() if k != "DB_URL"}
    done = flowengine("validate", str(path), env={**base, **env})
    return done.returncode, done.stdout + done.stderr


def test_sqlite_url_naming_a_host_fails_validation_at_its_line(tmp_path: Path) -> None:
    code, out = validate(tmp_path, BAD.format(url='"sqlite://b"'))
    assert code == 1
    assert "flow.yaml:5:5: node 'src': field 'connection_string': a SQLite URL names a file" in out


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u@db:99999/plant", "port 99999 out of range"),
        ("postgresql://u@db:port/plant", "invalid port"),
        ("plant.db", "must look like 'dialect://user:******@host/db'"),  # masked like any URL
        ("oracel://u@db/plant", "unknown database dialect 'oracel'"),
    ],
)
def test_bad_connection_strings_fail_validation(tmp_path: Path, url: str, message: str) -> None:
    code, out = validate(tmp_path, BAD.format(url=url))
    assert code == 1 and "field 'connection_string'" in out and message in out


def test_unset_variable_is_the_usual_error_not_a_url_error(tmp_path: Path) -> None:
    code, out = validate(tmp_path, BAD.format(url="${DB_URL}"))
    assert code == 1
    assert "field 'connection_string': environment variable 'DB_URL' is not set" in out
    assert "dialect" not in out and out.count("connection_string") == 1


def test_variable_is_checked_once_substituted(tmp_path: Path) -> None:
    assert validate(tmp_path, BAD.format(url="${DB_URL}"), DB_URL="sqlite:///h.db")[0] == 0
    code, out = validate(tmp_path, BAD.format(url="${DB_URL}"), DB_URL="sqlite://b")
    assert code == 1 and "names a file, not a host" in out
    password = "postgresql://reader:${PGPASSWORD}@db:5432/plant"
    assert validate(tmp_path, BAD.format(url=password), PGPASSWORD="pa:ss/w#rd")[0] == 0


def test_shipped_flows_validate(tmp_path: Path) -> None:
    flows = sorted(str(p) for p in (REPO / "flows").glob("*.yaml"))
    done = flowengine("validate", *flows, env=dict(os.environ), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def _doc_nodes() -> list[tuple[str, dict[str, Any]]]:
    """Every connector node configured in a YAML example of docs/ or the seed document."""
    found: list[tuple[str, dict[str, Any]]] = []
    docs = [*(REPO / "docs").glob("*.md"), REPO / "README.md"]
    for doc in docs:
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S):
            try:
                data = yaml.safe_load(block)
            except yaml.YAMLError:
                continue
            nodes = data.get("nodes", data) if isinstance(data, dict) else {}
            for name, node in nodes.items() if isinstance(nodes, dict) else ():
                if isinstance(node, dict) and node.get("type") in CONNECTORS:
                    found.append((f"{doc.name}:{name}", node))
    return found


def _problems(node: dict[str, Any]) -> list[str]:
    """Config errors of one node, variables set to plausible values, wires dropped."""
    config = {k: v for k, v in node.items() if k != "wires"}
    # a ${secret:NAME} reads a file these examples do not have: checked as a ${NAME}
    config = yaml.safe_load(re.sub(r"\$\{secret:(\w+)\}", r"${\1}", yaml.safe_dump(config)))
    env = {"PGPASSWORD": "secret", "LINE3_OPCUA": "opc.tcp://127.0.0.1:4840"}
    env |= {v: "x" for v in re.findall(r"\$\{(\w+)", str(config)) if v not in env}
    checked = check_text({"n": config}, env=env)
    return [str(p) for p in checked.errors if "field" in p.message or "missing" in p.message]


def test_docs_examples_validate() -> None:
    nodes = _doc_nodes()
    assert len(nodes) >= 6  # the connector docs' examples were found
    assert {name: _problems(node) for name, node in nodes} == {name: [] for name, _ in nodes}


SEED = REPO.parent / "shared" / "seed" / "production-data-connectors.md"


@pytest.mark.skipif(not SEED.exists(), reason="the seed document is not beside the repository")
def test_seed_document_settings_validate() -> None:
    text = SEED.read_text()
    blocks = dict(re.findall(r"```yaml\n(\w+):\n(.*?)```", text, re.S))
    types = {"opcua": "opcua_in", "mqtt": "mqtt_in", "rest": "rest_in", "database": "sql_in"}
    for key, kind in types.items():
        config = yaml.safe_load(blocks[key])
        assert _problems({"type": kind, **config}) == [], key
    for url in re.findall(r"'connection_string': '([^']+)'", text):
        assert _problems({"type": "sql_in", "connection_string": url, "query": "SELECT 1"}) == []
