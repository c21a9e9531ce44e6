"""Scratch databases on the machine's shared servers (the servers themselves are never touched)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

from flowengine.sqlurl import driver_url
from tests.helpers.peers import port_open

PG = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_missing() -> str | None:
    """Why PostgreSQL tests skip here, or None when the server listens."""
    if not port_open(5432):
        return "PostgreSQL not running on 127.0.0.1:5432: engine-specific SQL tested on SQLite only"
    return None


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    """A new database for one test (its URL), dropped afterwards."""
    name = f"fe_scratch_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(driver_url(PG), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
