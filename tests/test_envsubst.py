"""${VAR} and ${VAR:-default} from the environment and a .env beside the flow."""

from __future__ import annotations

import pytest

from flowengine.envsubst import MissingVariable, has_reference, load_env, substitute


def test_substitution_forms():
    env = {"HOST": "plc-3", "PORT": "4840"}
    assert substitute("opc.tcp://${HOST}:${PORT}", env) == "opc.tcp://plc-3:4840"
    assert substitute("${USER_X:-operator}", env) == "operator"
    assert substitute("${HOST:-other}", env) == "plc-3"
    assert substitute("${EMPTY:-}", env) == ""
    assert substitute("cost $$5 ${HOST}", env) == "cost $5 plc-3"
    assert substitute({"a": ["${HOST}", 3]}, env) == {"a": ["plc-3", 3]}


def test_missing_variable_names_it():
    with pytest.raises(MissingVariable) as err:
        substitute("x ${NOPE} y", {})
    assert err.value.name == "NOPE"


def test_dotenv_beside_flow_and_environment_wins(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("PLC_PASSWORD=from-dotenv\nONLY_DOTENV=yes\n")
    monkeypatch.setenv("PLC_PASSWORD", "from-env")
    env = load_env(tmp_path / "flow.yaml")
    assert env["PLC_PASSWORD"] == "from-env"
    assert env["ONLY_DOTENV"] == "yes"


def test_has_reference():
    assert has_reference("${A}") and has_reference("x${A:-1}")
    assert not has_reference("plain") and not has_reference("$$") and not has_reference(5)
