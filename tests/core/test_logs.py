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
