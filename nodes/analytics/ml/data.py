"""Training history: a CSV/Parquet/JSONL file, or a table or query of a SQL database.

SQL goes through plain SQLAlchemy and pandas (no other node family's client): a plain
``postgresql://`` URL is read with psycopg 3 and ``mysql://``/``mariadb://`` with PyMySQL, the
drivers the SQL nodes use, and a table name is checked and quoted as an identifier.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from flowengine.extras import require
from flowengine.sqlurl import driver_url

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def read_data(data: str, query: str | None = None) -> pd.DataFrame:
    """History from a CSV/Parquet/JSONL file, or a SQL URL with ``query`` (a table name or SQL)."""
    if "://" in data:
        return read_sql(data, query)
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True)
    return pd.read_csv(path)


def read_sql(url: str, query: str | None) -> pd.DataFrame:
    """All rows of a table (a plain name, quoted as needed) or of a SELECT statement."""
    sa = require("sqlalchemy", "sql")
    if not query:
        raise ValueError("a SQL URL needs --query (a table name or a SELECT)")
    if " " in query.strip():
        statement = sa.text(query)
    elif IDENTIFIER.match(query):
        statement = sa.select(sa.text("*")).select_from(sa.table(query))
    else:
        raise ValueError(f"'{query}' is not a valid table or column name (letters, digits, _)")
    engine = sa.create_engine(driver_url(url))
    try:
        with engine.connect() as conn:
            return pd.read_sql_query(statement, conn)
    finally:
        engine.dispose()
