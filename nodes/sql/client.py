"""SQL over SQLAlchemy 2 Core: pooled engines, bound-parameter queries, batch inserts, upserts.

One client serves ``sql_in``/``sql_out`` and the seed's :class:`DatabaseConnector`. SQLAlchemy's
engines are synchronous; every database call runs in a worker thread (``asyncio.to_thread``) so
the event loop never blocks. Values only ever travel as bound parameters; table and column names
are checked as identifiers and quoted by SQLAlchemy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from flowengine.extras import require
from flowengine.nodes.sql.config import identifier
from flowengine.nodes.sql.parse import columns_of, records, result_frame, to_db_time
from flowengine.sqlurl import driver_url

if TYPE_CHECKING:
    from sqlalchemy import Engine, Table


def beside_flow(url: str, flow_dir: Path) -> str:
    """A relative SQLite path (``sqlite:///out/h.db``) resolved beside the flow file, like the
    file nodes' paths, with its folder created; other URLs unchanged."""
    prefix = next((p for p in ("sqlite+pysqlite:///", "sqlite:///") if url.startswith(p)), None)
    if prefix is None:
        return url
    path, _, query = url[len(prefix) :].partition("?")
    if not path or path.startswith("/") or path == ":memory:" or path.startswith("file:"):
        return url
    full = (flow_dir / path).resolve()
    full.parent.mkdir(parents=True, exist_ok=True)
    return f"{prefix}{full}" + (f"?{query}" if query else "")


def create_engine(url: str, pool_size: int = 5) -> Engine:
    """A pooled engine that checks connections before use (so a restarted server is fine)."""
    sa = require("sqlalchemy", "sql")
    url = driver_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if not url.startswith("sqlite"):
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)
    engine = sa.create_engine(url, **kwargs)
    if url.startswith("sqlite") and ":memory:" not in url and url != "sqlite://":
        sa.event.listen(engine, "connect", _sqlite_wal)
    return engine


def _sqlite_wal(dbapi_conn: Any, _record: Any) -> None:
    """WAL with synchronous=NORMAL: readers do not block the writer, and a commit is not one
    fsync each (a crash of the process loses nothing; power loss may lose the last commits)."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def is_disconnect(exc: BaseException, dialect: str) -> bool:
    """True for errors a retry can fix: the server or the network path went away.

    SQLite reports bad SQL as OperationalError too, so there only a locked database counts.
    """
    sa_exc = require("sqlalchemy.exc", "sql")
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if dialect == "sqlite":
        return "database is locked" in str(exc)
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | OSError)


class CommitUncertain(Exception):
    """The connection died during COMMIT: the batch may or may not be stored.

    ``xid`` (PostgreSQL) lets :meth:`SqlClient.committed` find out once the server is back.
    """

    def __init__(self, cause: BaseException, xid: int | None) -> None:
        super().__init__(f"commit outcome unknown: {cause}")
        self.xid = xid


def _sql_type(series: pd.Series, key: bool) -> Any:
    sa = require("sqlalchemy", "sql")
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return sa.Boolean()
    if pd.api.types.is_integer_dtype(dtype):
        return sa.BigInteger()
    if pd.api.types.is_float_dtype(dtype):
        return sa.Double()
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        mysql = require("sqlalchemy.dialects.mysql", "sql")
        zoned = isinstance(dtype, pd.DatetimeTZDtype)
        return sa.DateTime(timezone=zoned).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    return sa.String(255) if key else sa.Text()  # MySQL cannot index TEXT


def table_for(name: str, frame: pd.DataFrame, keys: Sequence[str]) -> Table:
    """A table definition from the frame's dtypes; ``keys`` become the primary key."""
    sa = require("sqlalchemy", "sql")
    columns = [
        sa.Column(identifier(str(c)), _sql_type(frame[c], c in keys), primary_key=c in keys)
        for c in frame.columns
    ]
    return sa.Table(identifier(name), sa.MetaData(), *columns)


class SqlClient:
    """An engine plus the few operations the nodes need, each run in a worker thread."""

    def __init__(self, url: str, pool_size: int = 5) -> None:
        self.engine = create_engine(url, pool_size)
        self.dialect = self.engine.dialect.name
        self._tables: dict[str, Table] = {}

    async def ping(self) -> None:
        """Open one pooled connection (raises when the server cannot be reached)."""
        sa = require("sqlalchemy", "sql")

        def ping() -> None:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        await asyncio.to_thread(ping)

    async def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run ``sql`` with bound ``params``; datetimes are bound in the engine's convention."""
        sa = require("sqlalchemy", "sql")
        bound = {
            k: to_db_time(v, self.dialect) if isinstance(v, datetime) else v
            for k, v in (params or {}).items()
        }
        statement = sa.text(sql)
        typed = [
            sa.bindparam(k, type_=sa.DateTime(timezone=v.tzinfo is not None))
            for k, v in bound.items()
            if isinstance(v, datetime) and k in statement._bindparams
        ]
        if typed:
            statement = statement.bindparams(*typed)

        def run() -> pd.DataFrame:
            with self.engine.connect() as conn:
                result = conn.execute(statement, bound)
                return result_frame(result.fetchall(), list(result.keys()), self.dialect)

        return await asyncio.to_thread(run)

    def _table(self, conn: Any, name: str, frame: pd.DataFrame, keys: Sequence[str]) -> Table:
        sa = require("sqlalchemy", "sql")
        table = self._tables.get(name)
        if table is None:
            if sa.inspect(conn).has_table(identifier(name)):
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            else:
                table = table_for(name, frame, keys)
                table.create(conn, checkfirst=True)
        return table

    def _statement(self, table: Table, keys: Sequence[str], columns: Sequence[str]) -> Any:
        sa = require("sqlalchemy", "sql")
        if not keys:
            return sa.insert(table)
        update = [c for c in columns if c not in keys]
        if self.dialect in ("postgresql", "sqlite"):
            dialect = require(f"sqlalchemy.dialects.{self.dialect}", "sql")
            stmt = dialect.insert(table)
            if not update:
                return stmt.on_conflict_do_nothing(index_elements=list(keys))
            return stmt.on_conflict_do_update(
                index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
            )
        if self.dialect in ("mysql", "mariadb"):
            mysql = require("sqlalchemy.dialects.mysql", "sql")
            stmt = mysql.insert(table)
            update = update or list(keys)
            return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})
        raise ValueError(f"upsert is not supported on {self.dialect}")

    async def write(self, table: str, frame: pd.DataFrame, keys: Sequence[str] = ()) -> None:
        """Insert (or upsert on ``keys``) all rows in one transaction, with executemany;
        the table is created from the frame's dtypes when missing."""
        for name in (*frame.columns, *keys):
            identifier(str(name))
        names = [str(c) for c in frame.columns]

        def run() -> None:
            with self.engine.connect() as conn:
                trans = conn.begin()
                target = self._table(conn, table, frame, keys)
                if keys:
                    conn.execute(self._statement(target, keys, names), records(frame, self.dialect))
                else:
                    self._append(conn, target, names, columns_of(frame, self.dialect))
                xid = None
                if self.dialect == "postgresql":
                    xid = conn.exec_driver_sql("SELECT txid_current()").scalar()
                try:
                    trans.commit()
                except Exception as exc:
                    if is_disconnect(exc, self.dialect):
                        raise CommitUncertain(exc, xid) from exc
                    raise
            self._tables[table] = target  # only once committed: DDL may roll back (PostgreSQL)

        await asyncio.to_thread(run)

    async def committed(self, xid: int) -> bool:
        """Whether PostgreSQL transaction ``xid`` committed (after a :class:`CommitUncertain`)."""
        frame = await self.query("SELECT txid_status(:xid) AS status", {"xid": xid})
        return bool(frame["status"].iloc[0] == "committed")

    def _append(self, conn: Any, table: Table, names: list[str], columns: dict[str, Any]) -> None:
        """The fast append path: PostgreSQL ``COPY ... FROM STDIN`` (rows sent as data, in this
        transaction); elsewhere the driver's executemany of the SQLAlchemy-compiled
        ``insert(table)``, skipping per-row bind processing (values are converted above)."""
        sa = require("sqlalchemy", "sql")
        rows = list(zip(*(columns[n] for n in names), strict=True))
        quote = conn.dialect.identifier_preparer
        if self.dialect == "postgresql":
            cols = ", ".join(quote.quote(n) for n in names)
            copy_sql = f"COPY {quote.format_table(table)} ({cols}) FROM STDIN"
            with conn.connection.driver_connection.cursor() as cur, cur.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
            return
        compiled = sa.insert(table).compile(dialect=conn.dialect, column_keys=names)
        if compiled.positiontup is None:  # named paramstyle (pymysql)
            params: list[Any] = [dict(zip(names, row, strict=True)) for row in rows]
        else:
            index = [names.index(n) for n in compiled.positiontup]
            params = (
                rows
                if index == list(range(len(names)))
                else [tuple(row[i] for i in index) for row in rows]
            )
        conn.exec_driver_sql(str(compiled), params)

    async def close(self) -> None:
        """Dispose the engine's pool (in a worker thread: it may wait on the network)."""
        await asyncio.to_thread(self.engine.dispose)
