"""REST request settings: a plain pydantic model that the ``rest_in``/``rest_out`` configs
compose (``class RestInConfig(NodeConfig, HttpConfig)``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from flowengine.node import option


class HttpConfig(BaseModel):
    """Request settings shared by the REST source and sink."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    headers: dict[str, str] = option({}, description="Extra request headers (use ${VAR} for keys).")
    token: str | None = option(None, description="Bearer token.", secret=True)
    username: str | None = option(None, description="User for basic auth.")
    password: str | None = option(None, description="Password for basic auth.", secret=True)
    timeout: float = option(10.0, gt=0, description="Seconds per request.")
    retries: int = option(3, ge=0, description="Retries per request on 5xx and timeouts.")
    backoff: float = option(0.5, ge=0, description="First retry delay (doubles).", advanced=True)
