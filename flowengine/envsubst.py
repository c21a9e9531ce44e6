"""``${VAR}`` and ``${VAR:-default}`` substitution from the environment and a ``.env`` file,
and ``${secret:NAME}`` from the encrypted ``flowengine.secrets`` beside the flow.

Substitution happens when a flow is built, never in the document: saving and exporting keep the
references, so secrets stay in the environment or the secrets file. A secret is read only when a
reference asks for it (:mod:`flowengine.secrets`, imported then), so a flow without one never
needs the key.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dotenv import dotenv_values
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# ``$$``, ``${secret:NAME}``, a well-formed ``${VAR}``, or any other ``${`` (an error, not text).
_REF = re.compile(rf"\$\$|\$\{{secret:({_NAME})\}}|\$\{{({_NAME})(?::-([^}}$]*))?\}}|\$\{{")

_WHOLE = re.compile(rf"\$\{{(?:secret:{_NAME}|{_NAME}(?::-[^}}$]*)?)\}}")
_SCALAR_MAX = 100
#: Text ending inside a URL's ``user:password`` part (before its ``@``).
_IN_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@?#]*$")
_TO_AT = re.compile(r"[^\s/?#@]*@")


class EnvError(ValueError):
    """A reference that cannot be resolved."""


class MissingVariable(EnvError):
    """A ``${VAR}`` without a default whose variable is not set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"environment variable '{self.name}' is not set (use ${{{self.name}:-default}})"


class BadReference(EnvError):
    """A ``${`` that is not ``${NAME}`` or ``${NAME:-default}``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return (
            f"malformed variable reference in {self.text!r}: use ${{NAME}}, "
            "${NAME:-default} or ${secret:NAME} (and $$ for a literal $)"
        )


class FlowEnv(dict[str, str]):
    """A flow's variables, plus the flow file whose ``flowengine.secrets`` its
    ``${secret:NAME}`` references read (a plain mapping has no secrets)."""

    def __init__(self, values: Mapping[str, str] | None = None, flow_path: Path | None = None):
        super().__init__(values or {})
        self.flow_path = flow_path


def load_env(flow_path: Path | None) -> FlowEnv:
    """The environment for a flow: ``.env`` beside it, overridden by the process environment;
    its ``${secret:NAME}`` come from ``flowengine.secrets`` beside it.

    Raises ``OSError`` or ``UnicodeDecodeError`` when the ``.env`` file cannot be read.
    """
    env = FlowEnv(flow_path=flow_path)
    if flow_path is not None:
        dotenv = flow_path.parent / ".env"
        if dotenv.is_file():
            values = dotenv_values(stream=io.StringIO(dotenv.read_text(encoding="utf-8")))
            env.update({k: v for k, v in values.items() if v is not None})
    env.update(os.environ)
    return env


def has_reference(value: Any) -> bool:
    """True when a string holds a ``${VAR}`` or ``${secret:NAME}`` reference."""
    return isinstance(value, str) and any(m.group(1) or m.group(2) for m in _REF.finditer(value))


def substitute(value: Any, env: Mapping[str, str]) -> Any:
    """Replace references in strings, recursively through lists and mappings (``$$`` is ``$``).

    ``${secret:NAME}`` reads the secrets file of a :class:`FlowEnv`'s flow (see
    :func:`flowengine.secrets.resolve_secret`: the value is registered for masking in logs).
    """
    if isinstance(value, str):
        if "$" not in value:
            return value

        def repl(match: re.Match[str]) -> str:
            secret, name, default = match.groups()
            if match.group(0) == "$$":
                return "$"
            if secret is not None:
                text = _secret(secret, env)
                in_url = _IN_USERINFO.search(value, 0, match.start())
                if in_url and _TO_AT.match(value, match.end()):  # ...://user:${secret:PW}@host
                    text = quote(text, safe="")  # an '@', '/' or '#' must not move the host
                return text
            if name is None:
                raise BadReference(value)
            if env.get(name):
                return env[name]
            if default is not None:  # as in the shell: ':-' also replaces an empty value
                return default
            if name in env:
                return ""
            raise MissingVariable(name)

        return _REF.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, env) for v in value]
    return value


def _secret(name: str, env: Mapping[str, str]) -> str:
    from flowengine.secrets import resolve_secret  # lazy: only a flow with secrets needs it

    return resolve_secret(name, env.flow_path if isinstance(env, FlowEnv) else None)


def is_whole_reference(value: Any) -> bool:
    """True when a string is one reference and nothing else (``qos: ${QOS:-0}``)."""
    return isinstance(value, str) and _WHOLE.fullmatch(value) is not None


def yaml_scalar(text: str) -> Any:
    """``text`` read as a YAML scalar, as if written in the file: ``"1"`` -> 1, ``"true"`` ->
    True, ``""`` -> None; text that is not a number, boolean or null comes back unchanged."""
    if len(text) > _SCALAR_MAX or "\n" in text:
        return text
    try:
        value = YAML(typ="safe", pure=True).load(text)
    except (YAMLError, ValueError):
        return text
    return value if value is None or isinstance(value, bool | int | float) else text
