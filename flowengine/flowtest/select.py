"""``-k EXPR``: pytest's keyword selection for cases.

A word matches when it is a substring (ignoring case) of the case id, ``FILE::NAME``; words
combine with ``and``, ``or``, ``not`` and parentheses: ``-k "alert and not quiet"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")
Matcher = Callable[[str], bool]


class SelectError(ValueError):
    """A ``-k`` expression that does not parse."""


def parse(expr: str) -> Matcher:
    """A predicate on case ids; raises SelectError for a malformed expression."""
    tokens = [m.group(1) for m in _TOKEN.finditer(expr)]
    if not tokens:
        return lambda _id: True
    matcher, rest = _or(tokens, expr)
    if rest:
        raise SelectError(f"-k {expr!r}: unexpected {rest[0]!r}")
    return matcher


def _or(tokens: list[str], expr: str) -> tuple[Matcher, list[str]]:
    left, tokens = _and(tokens, expr)
    while tokens and tokens[0] == "or":
        right, tokens = _and(tokens[1:], expr)
        left = (lambda a, b: lambda s: a(s) or b(s))(left, right)
    return left, tokens


def _and(tokens: list[str], expr: str) -> tuple[Matcher, list[str]]:
    left, tokens = _not(tokens, expr)
    while tokens and tokens[0] == "and":
        right, tokens = _not(tokens[1:], expr)
        left = (lambda a, b: lambda s: a(s) and b(s))(left, right)
    return left, tokens


def _not(tokens: list[str], expr: str) -> tuple[Matcher, list[str]]:
    if not tokens:
        raise SelectError(f"-k {expr!r}: ends where a word was expected")
    head = tokens[0]
    if head == "not":
        inner, rest = _not(tokens[1:], expr)
        return (lambda s: not inner(s)), rest
    if head == "(":
        inner, rest = _or(tokens[1:], expr)
        if not rest or rest[0] != ")":
            raise SelectError(f"-k {expr!r}: missing ')'")
        return inner, rest[1:]
    if head in ("and", "or", ")"):
        raise SelectError(f"-k {expr!r}: unexpected {head!r}")
    word = head.lower()
    return (lambda s: word in s.lower()), tokens[1:]
