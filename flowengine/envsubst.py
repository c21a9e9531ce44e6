"""``${VAR}`` and ``${VAR:-default}`` substitution from the environment and a ``.env`` file.

Substitution happens when a flow is built, never in the document: saving and exporting keep the
references, so secrets stay in the environment.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

# ``$$``, a well-formed reference, or any other ``${`` (which is an error, not literal text).
_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}$]*))?\}|\$\{")

_WHOLE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}$]*)?\}")
_SCALAR_MAX = 100


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
            f"malformed variable reference in {self.text!r}: use ${{NAME}} or "
            "${NAME:-default} (and $$ for a literal $)"
        )


def load_env(flow_path: Path | None) -> dict[str, str]:
    """The environment for a flow: ``.env`` beside it, overridden by the process environment.

    Raises ``OSError`` or ``UnicodeDecodeError`` when the ``.env`` file cannot be read.
    """
    env: dict[str, str] = {}
    if flow_path is not None:
        dotenv = flow_path.parent / ".env"
        if dotenv.is_file():
            values = dotenv_values(stream=io.StringIO(dotenv.read_text(encoding="utf-8")))
            env.update({k: v for k, v in values.items() if v is not None})
    env.update(os.environ)
    return env


def has_reference(value: Any) -> bool:
    """True when a string holds a ``${VAR}`` reference."""
    return isinstance(value, str) and any(m.group(1) for m in _REF.finditer(value))


def substitute(value: Any, env: Mapping[str, str]) -> Any:
    """Replace references in strings, recursively through lists and mappings (``$$`` is ``$``)."""
    if isinstance(value, str):
        if "$" not in value:
            return value

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if match.group(0) == "$$":
                return "$"
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


def is_whole_reference(value: Any) -> bool:
    """True when a string is one ``${VAR}`` reference and nothing else (``qos: ${QOS:-0}``)."""
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
