"""Logging: JSON lines carry the node id; registered secrets are masked everywhere."""

from __future__ import annotations

import io
import json
import logging

from flowengine.logs import add_secrets, setup_logging
from flowengine.noderun import NodeLogAdapter


def test_json_lines_with_node_and_masked_secret():
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    add_secrets(["pa55word-xyz"])
    try:
        adapter = NodeLogAdapter(logging.getLogger("flowengine.node.test"), {"node": "plc"})
        adapter.error("login with %s failed", "pa55word-xyz")
        try:
            raise ValueError("token pa55word-xyz rejected")
        except ValueError:
            logging.getLogger("flowengine").exception("boom")
    finally:
        logging.getLogger().handlers.clear()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["node"] == "plc" and first["level"] == "error"
    assert first["message"] == "node 'plc': login with ****** failed"
    assert "pa55word" not in stream.getvalue()
    assert "token ****** rejected" in second["exception"]


def test_text_format_is_one_line_per_record():
    stream = io.StringIO()
    setup_logging("warning", "text", stream)
    try:
        logging.getLogger("flowengine").info("hidden")
        logging.getLogger("flowengine").warning("shown %d", 3)
    finally:
        logging.getLogger().handlers.clear()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("WARNING shown 3")


def test_masking_rule_credentials_and_whole_tokens(monkeypatch):
    from flowengine import logs

    monkeypatch.setattr(logs, "_secrets", {})
    add_secrets(["line", "postgresql://u:Pw0rd-x@db/plant", "hunter2-literal", None])
    add_secrets([{"Authorization": "Bearer tok3n-abc", "Accept": "text/csv"}])
    redact = logs.redact
    # an ordinary word equal to a weak secret stays; the credential position is masked
    assert redact("line 3 failed in the pipeline") == "line 3 failed in the pipeline"
    assert redact("password=line user=u") == "password=****** user=u"
    # a URL: only its password
    assert redact("cannot reach postgresql://u:Pw0rd-x@db/plant") == (
        "cannot reach postgresql://u:******@db/plant"
    )
    assert redact("mysql://root:other@h/x") == "mysql://root:******@h/x"
    # distinctive secrets: as whole tokens anywhere, not inside longer tokens
    assert redact("login operator:hunter2-literal refused") == "login operator:****** refused"
    assert redact("got Pw0rd-x back") == "got ****** back"
    assert redact("xhunter2-literalx") == "xhunter2-literalx"
    # header-like values
    assert redact("Authorization: Bearer anything") == "Authorization: Bearer ******"
    assert (
        redact('{"X-API-Key": "k9", "api_key": "z"}')
        == '{"X-API-Key": "******", "api_key": "******"}'
    )
    assert redact("sent tok3n-abc") == "sent ******"
    assert redact("Accept text/csv") == "Accept text/csv"


def test_a_header_credential_in_a_flow_is_masked_in_logs() -> None:
    from flowengine.runtime import Runtime
    from flowengine.testing import check_text

    token = "k9-Zq7TOKEN-4471"
    checked = check_text(
        {
            "src": {"type": "inject", "rows": [{"value": 1}], "wires": ["hook"]},
            "hook": {
                "type": "rest_out",
                "url": "http://127.0.0.1:9/",
                "headers": {"X-API-Key": token},
            },
        }
    )
    stream = io.StringIO()
    setup_logging("info", "text", stream)
    try:
        Runtime(checked)  # registers the flow's secrets, header values included
        logging.getLogger("flowengine.test").error("the service refused %s for line 3", token)
    finally:
        logging.getLogger().handlers.clear()
    assert token not in stream.getvalue() and "for line 3" in stream.getvalue()


def test_chatty_libraries_log_info_only_at_debug() -> None:
    """asyncua logs every OPC UA publish response at INFO (~450 KB a line at 10,000 tags)."""
    stream = io.StringIO()
    try:
        setup_logging("info", "text", stream)
        logging.getLogger("asyncua.client.ua_client").info("PublishResponse(...huge...)")
        logging.getLogger("httpx").info("HTTP Request: GET http://plc/ 200")
        logging.getLogger("asyncua").warning("subscription lost")
        assert (
            "PublishResponse" not in stream.getvalue() and "HTTP Request" not in stream.getvalue()
        )
        assert "subscription lost" in stream.getvalue()
        setup_logging("debug", "text", stream)
        logging.getLogger("asyncua.client.ua_client").info("PublishResponse(seen at debug)")
        assert "seen at debug" in stream.getvalue()
    finally:
        logging.getLogger().handlers.clear()
        setup_logging("info", "text", io.StringIO())
        logging.getLogger().handlers.clear()
