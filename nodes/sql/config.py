"""Settings shared by ``sql_in`` and ``sql_out``: the connection string field (checked when the
flow is validated, not first when it runs) and the check of table and column names (values never
need one: they only travel as bound parameters)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator

from flowengine.node import option
from flowengine.sqlurl import check_sql_url

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def identifier(name: str) -> str:
    """``name`` if it is a plain SQL identifier; raises otherwise (it is never formatted in)."""
    if not IDENTIFIER.match(name):
        raise ValueError(f"'{name}' is not a valid table or column name (letters, digits, _)")
    return name


#: A connection string, checked by the SDK (``sqlite://b`` fails at validation, at its line).
#: ``${VAR}`` references are substituted before configs are validated, so this sees the value.
SqlUrl = Annotated[str, AfterValidator(check_sql_url)]


def connection_field(role: str) -> Any:
    """The ``connection_string`` field; ``role`` names the example's database user."""
    return option(
        description="SQLAlchemy URL; put the password in ${VAR}. A relative SQLite path "
        "(sqlite:///out/h.db) is beside the flow file.",
        examples=[f"postgresql://{role}:${{PGPASSWORD}}@db:5432/plant"],
        secret=True,
    )
