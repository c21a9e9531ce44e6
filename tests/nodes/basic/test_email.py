"""Email sink against a real local aiosmtpd server with STARTTLS and AUTH."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from flowengine.testing import run_flow
from tests.helpers.peers import free_port, self_signed

USER, PASSWORD = "flow", "s3cret"


@dataclass
class Mailbox:
    """What the server received: (envelope recipients, parsed message) per email."""

    port: int
    cafile: Path
    received: list[tuple[list[str], Message]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[Mailbox]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box = Mailbox(free_port(), cert)
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticate,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


RECORDS = [
    {
        "timestamp": "2026-01-01T10:42:03Z",
        "event": "raise",
        "line": 3,
        "severity": "critical",
        "message": "Line 3: defect probability 0.86 (critical) since 10:42:03",
    },
    {
        "timestamp": "2026-01-01T10:43:00Z",
        "event": "clear",
        "line": 3,
        "severity": "critical",
        "message": "Line 3: defect probability 0.50 cleared (critical since 10:42:03)",
    },
]


def flow(box: Mailbox, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    mail = {
        "type": "email",
        "host": "127.0.0.1",
        "port": box.port,
        "starttls": True,
        "cafile": str(box.cafile),
        "username": USER,
        "password": password,
        "from": "flow@plant.local",
        "to": ["lead@plant.local", "qa@plant.local"],
        "wires": {"error": ["err"]},
        **extra,
    }
    return {
        "src": {"type": "inject", "rows": RECORDS, "wires": ["mail"]},
        "mail": mail,
        "err": {"type": "capture"},
    }


def test_batch_is_one_email_with_recipients_subject_and_body(smtp: Mailbox) -> None:
    result = run_flow(flow(smtp))
    assert result.batches("err") == []
    [(rcpts, msg)] = smtp.received
    assert rcpts == ["lead@plant.local", "qa@plant.local"]
    assert msg["Subject"] == "[critical] Line 3 alert"
    assert msg["From"] == "flow@plant.local"
    text = msg.get_payload(decode=True).decode()
    assert "2 alert record(s)" in text
    for record in RECORDS:
        assert record["message"] in text


def test_subject_template_missing_field_shows_question_mark(smtp: Mailbox) -> None:
    run_flow(flow(smtp, subject="{severity}/{sensor}"))
    assert smtp.received[0][1]["Subject"] == "critical/?"


def test_wrong_password_goes_to_error_port(smtp: Mailbox) -> None:
    result = run_flow(flow(smtp, password="wrong"))
    assert smtp.received == []
    [failed] = result.batches("err")
    assert "Authentication" in (failed.error or "") or "535" in (failed.error or "")
    assert result.stats("mail")["errors"] == 1


def test_rate_limit_combines_extra_batches(smtp: Mailbox) -> None:
    nodes = flow(smtp, max_per_minute=1)
    nodes["src"].update(count=3, interval=0.05)
    run_flow(nodes)
    assert len(smtp.received) == 2  # the first batch at once, the other two combined at flush
    second = smtp.received[1][1].get_payload(decode=True).decode()
    assert "4 alert record(s)" in second
