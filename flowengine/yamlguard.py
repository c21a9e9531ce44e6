"""Bounds on what a flow file may make the YAML parser do, so a hostile file fails fast.

A flow file is configuration written by people: these limits are far above any real flow and far
below what costs noticeable CPU or memory. Each breach is a located YAML error, never a traceback:

- size: at most :data:`MAX_CHARS` characters;
- nesting: at most :data:`MAX_DEPTH` levels of lists and mappings (ruamel's composer recurses);
- aliases: every ``*ref`` (and ``<<: *ref`` merge) counts the nodes it stands for; all of them
  together may stand for at most :data:`MAX_ALIAS_NODES` nodes (billion laughs, merge bombs);
  an alias inside its own anchor (a recursive structure) is refused;
- tags: only the plain YAML ones (``!!str``, ``!!int`` ...); ``!!python/...`` and local tags are
  refused, as they would make objects no flow needs;
- keys: a mapping key must be a scalar, never a list or a mapping.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml.composer import Composer, ComposerError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_CHARS = 4 * 1024 * 1024
MAX_DEPTH = 100
MAX_ALIAS_NODES = 100_000
_CORE = "tag:yaml.org,2002:"
NESTED = f"nested more than {MAX_DEPTH} levels deep"
_BRACKET = re.compile(r"[\[\]{}]")
ALLOWED_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq"))


def too_deep(text: str) -> tuple[int, int] | None:
    """1-based line and column of the first ``[``/``{`` that opens level ``MAX_DEPTH + 1``.

    Checked before ruamel sees the text: its scanner keeps a possible key per open bracket and
    rescans them all for every token, quadratic in the nesting (seconds for 1,000 ``[``).
    Brackets in quotes or comments count too: only a hundred unclosed ones trip it.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    depth = 0
    for match in _BRACKET.finditer(text):
        if match.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                start = match.start()
                line_start = text.rfind("\n", 0, start) + 1
                return text.count("\n", 0, start) + 1, start - line_start + 1
        else:
            depth = max(0, depth - 1)
    return None


class GuardedComposer(Composer):
    """ruamel's composer plus the depth, alias, tag and key rules above."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.sizes: dict[int, int] = {}
        self.expanded = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            self._count_alias(event)
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            raise ComposerError(None, None, NESTED, event.start_mark)
        tag = getattr(event, "ctag", None)
        if tag is not None and str(tag) != "!" and str(tag) not in ALLOWED_TAGS:
            shown = str(tag).replace(_CORE, "!!")
            raise ComposerError(
                None, None, f"YAML tag '{shown}' is not allowed in a flow file", event.start_mark
            )
        node = super().compose_node(parent, index)
        self.sizes[id(node)] = 1 + sum(self.sizes.get(id(c), 1) for c in _children(node))
        if isinstance(node, MappingNode):
            for key, _value in node.value:
                if not isinstance(key, ScalarNode):
                    raise ComposerError(
                        None,
                        None,
                        "a mapping key must be a plain value, not a list or a mapping",
                        key.start_mark,
                    )
        return node

    def _count_alias(self, event: Any) -> None:
        """Charge the alias's size to the budget; refuse a recursive one."""
        node = self.anchors.get(event.anchor)
        if node is None:
            return  # ruamel reports the undefined alias
        size = self.sizes.get(id(node))
        if size is None:
            raise ComposerError(
                None,
                None,
                f"recursive alias '*{event.anchor}' (an alias inside its own anchor)",
                event.start_mark,
            )
        self.expanded += size
        if self.expanded > MAX_ALIAS_NODES:
            raise ComposerError(
                None,
                None,
                f"aliases expand to more than {MAX_ALIAS_NODES} values (an alias bomb?)",
                event.start_mark,
            )


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []
