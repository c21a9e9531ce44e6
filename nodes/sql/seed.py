"""The seed's ``DatabaseConnector`` over the nodes' ``SqlClient``."""

from __future__ import annotations

import pandas as pd

from flowengine.connectors.base import BaseDataConnector
from flowengine.nodes.sql.client import SqlClient
from flowengine.sqlurl import check_sql_url


class DatabaseConnector(BaseDataConnector):
    """The seed's database connector: ``connection_string``, ``query`` (and ``params``)."""

    label = "database"
    client: SqlClient | None = None

    async def _connect(self) -> None:
        self.client = SqlClient(check_sql_url(self.config["connection_string"]))
        await self.client.ping()

    async def _read(self) -> pd.DataFrame | None:
        assert self.client is not None  # BaseDataConnector reads only once connected
        return await self.client.query(self.config["query"], self.config.get("params"))

    async def _disconnect(self) -> None:
        if self.client is not None:
            await self.client.close()
