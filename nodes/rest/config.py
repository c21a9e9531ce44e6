"""REST request settings: a plain pydantic model that the ``rest_in``/``rest_out`` configs
compose (``class RestInConfig(NodeConfig, HttpConfig)``), and the check of their URLs."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from flowengine.masking import mask_url_password
from flowengine.node import option
from flowengine.sqlurl import split_host_port


def check_http_url(url: str, *, empty: bool = False) -> str:
    """``url`` if it is ``http(s)://host[:port][/path]`` (``empty`` allows ""), else a
    ValueError saying what is wrong, so a bad URL fails validation instead of every request."""
    if not url and empty:
        return url
    shown = mask_url_password(url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not url.partition("://")[1]:
        raise ValueError(f"'{shown}' must start with http:// or https://")
    netloc = parts.netloc.rpartition("@")[2]  # user:password@ is allowed
    if not netloc:
        raise ValueError(f"'{shown}' names no host (e.g. https://api.plant.local)")
    split_host_port(netloc)
    return url


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

    @field_validator("url", "base_url", check_fields=False)
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        """``rest_out``'s ``url`` and ``rest_in``'s ``base_url`` (empty: endpoints are whole
        URLs), checked where they are defined, in the configs that compose this model."""
        return check_http_url(value, empty=info.field_name == "base_url")
