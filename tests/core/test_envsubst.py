"""${VAR} and ${VAR:-default} from the environment and a .env beside the flow."""

from __future__ import annotations

import pytest

from flowengine.envsubst import (
    BadReference,
    EnvError,
    FlowEnv,
    MissingVariable,
    has_reference,
    is_whole_reference,
    load_env,
    substitute,
)


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


def test_empty_value_takes_the_default_like_the_shell():
    assert substitute("${LIM:-25}", {"LIM": ""}) == "25"
    assert substitute("x${LIM}y", {"LIM": ""}) == "xy"


@pytest.mark.parametrize("text", ["${B", "${B-x}", "${ B }", "${X:?m}", "${NOPE:-${B}}", "a ${1X}"])
def test_malformed_references_are_errors_not_literal_text(text):
    with pytest.raises(BadReference, match="malformed variable reference"):
        substitute(text, {"B": "b"})


def test_secret_references_are_references():
    assert has_reference("${secret:DB_PASSWORD}")
    assert has_reference("postgresql://u:${secret:DB_PASSWORD}@db/plant")
    assert is_whole_reference("${secret:PORT}") and not is_whole_reference("x${secret:PORT}")
    assert substitute("cost $${secret:A}", {}) == "cost ${secret:A}"  # $$ escapes, reads nothing


@pytest.mark.parametrize("text", ["${secret:}", "${secret:1A}", "${secret:A:-x}", "${secret A}"])
def test_malformed_secret_references_are_errors(text):
    with pytest.raises(BadReference, match=r"or \$\{secret:NAME\}"):
        substitute(text, {})


def test_load_env_knows_its_flow_and_a_plain_mapping_has_no_secrets(tmp_path):
    env = load_env(tmp_path / "flow.yaml")
    assert isinstance(env, FlowEnv) and env.flow_path == tmp_path / "flow.yaml"
    with pytest.raises(EnvError, match="no file, so no secrets file"):
        substitute("${secret:A}", {"secret:A": "x", "A": "y"})


def test_a_flow_without_secret_references_never_opens_the_secrets_file(tmp_path):
    (tmp_path / "flowengine.secrets").write_text("{damaged")
    env = load_env(tmp_path / "flow.yaml")
    assert substitute({"url": "x${HOME:-h}", "n": [1, "$$"]}, env)["n"] == [1, "$"]
