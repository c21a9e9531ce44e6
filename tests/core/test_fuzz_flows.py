"""Fuzzing flow loading: garbage, mutated YAML/JSON, deep nesting, aliases and odd keys all give
problems; loading never raises, never hangs (each example within a deadline), memory bounded."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowengine.testing import registry_with
from flowengine.validate import load_flow

REGISTRY = registry_with()
FUZZ = settings(
    max_examples=150,
    deadline=2000,  # ms per example: a hang or a blow-up fails the test
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SEED = """\
version: 1
name: demo
settings: {queue_size: 4}
nodes:
  src:
    type: inject
    rows: [{value: 1}, {value: 2}]
    wires: [f]
  f:
    type: filter
    query: value > 1
    wires: {out: [d]}
  d: {type: debug, name: ${NAME:-sink}}
layout:
  src: {x: 1, y: 2}
"""
SNIPPETS = [
    "[" * 300,
    "]" * 30,
    "{" * 200,
    "&a [*a]",
    "&x {k: *x}",
    "*nope",
    "<<: *a",
    "? [a, b]\n: 1\n",
    "[a]: {type: debug}",
    "{a: 1}: x",
    "!!python/object/apply:os.system [x]",
    "!!python/name:os.system",
    "!local 3",
    "!!binary aGk=",
    "!!set {a, b}",
    "${",
    "${UNSET}",
    "$$",
    "\x00",
    "\x07",
    "\ufeff",
    "\t",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    ": :",
    "- - -",
    "'unclosed",
    '"unclosed',
    "|\n",
    ">-\n",
    "#",
    "1e999",
    "-.inf",
    "null",
    "~",
    "0x",
    "2024-13-45",
    "wires: 5",
    "type: [x]",
    "nodes: 3",
    "version: 99",
    "query: " + " + ".join(["a"] * 3000),
]
ALIAS_BOMB = "\n".join(
    [f"l0: &l0 [{','.join(['x'] * 9)}]"]
    + [f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
)


def check(text: str, suffix: str) -> None:
    """Load ``text`` as a flow file: whatever it is, problems come back, nothing raises."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"flow{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        checked = load_flow(path, REGISTRY, env={})
    for problem in checked.problems:
        assert problem.pos.line >= 0 and problem.pos.col >= 0
        assert str(problem).startswith(str(path))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """The seed flow with snippets spliced in, characters dropped and lines shuffled."""
    text = SEED
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["insert", "delete", "swap", "text"]))
        at = draw(st.integers(0, len(text)))
        if action == "insert":
            text = text[:at] + draw(st.sampled_from(SNIPPETS)) + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif action == "swap":
            lines = text.splitlines(keepends=True)
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
        else:
            text = text[:at] + draw(st.text(max_size=20)) + text[at:]
    return text


@FUZZ
@given(mutated())
def test_mutated_yaml_flows(text):
    check(text, ".yaml")


@FUZZ
@given(st.text(max_size=300))
def test_garbage_text(text):
    check(text, ".yaml")
    check(text, ".json")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["version", "name", "settings", "nodes", "layout", "x"]),
        JSON_VALUES,
    ),
    st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4),
)
def test_structured_json_and_yaml(top, nodes):
    top = {**top, "nodes": {k: v for k, v in nodes.items()} if nodes else top.get("nodes")}
    text = json.dumps(top, allow_nan=True)
    check(text, ".json")
    check(text, ".yaml")


@FUZZ
@given(st.integers(1, 1000), st.sampled_from(["[", "{a: ", "- ", "{", "? "]))
def test_deep_nesting(depth, opener):
    body = opener * depth
    check(f"version: 1\nnodes:\n  a: {body}\n", ".yaml")


def test_alias_bomb_in_a_mutated_flow():
    check(ALIAS_BOMB + "\n" + SEED, ".yaml")
