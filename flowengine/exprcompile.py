"""Expressions compiled once into closures over a frame's column arrays, as pandas computes them.

``DataFrame.eval`` tokenizes and parses its text, builds a scope and wraps every intermediate
result in a Series on every call: ~600 us for ``value * 9 / 5 + 32`` on a 1-row frame. Here the
text goes through pandas' own preparser once (so ``&``, ``|``, ``not``, backticks and
``== 'a'`` mean what they mean in pandas), then each call looks the columns up and runs numpy.

The results are those of pandas' python engine (the one it uses without numexpr), step by step:

* numeric arrays (bool too for comparisons, ``&``, ``|``, ``~``) with numeric constants run the
  very numpy operation pandas runs underneath; ``//`` and ``%`` fill divisions by zero as
  pandas does; ``-`` of a bool is ``~`` as in pandas;
* ``==``, ``!=``, ``in``, ``not in`` against a string or list literal are ``isin`` as in pandas,
  done with numpy ``==`` when that gives the same answer (an object column holding only strings
  and missing values; integers or float64 against plain numbers);
* any other operand (object, string, datetime, categorical columns, numpy scalars) goes through
  the Series operator pandas itself applies, with pandas' conversion of a constant compared
  with a datetime column;
* arithmetic on anything but numbers, names that are not columns, index names, multi-line text
  and any construct this module does not know run ``DataFrame.eval`` itself: decided at compile
  time (:func:`compile_expression` returns ``None``) or per call (:class:`Fallback`).

:meth:`Compiled.column_values` runs the same closures on a batch's
:class:`~flowengine.columns.Columns`, so the built-in nodes need no DataFrame at all.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from keyword import iskeyword
from typing import Any

import numpy as np
import pandas as pd

from flowengine.columns import Columns, labels
from flowengine.exprops import (
    ARITH,
    COMPARE,
    PANDAS,
    UNARY,
    Fallback,
    Run,
    arith,
    call,
    compare,
    converting,
    isin,
    logical,
    quietly,
)
from flowengine.frames import column_at, same_labels

#: Names pandas resolves from its own globals, not from the columns.
_GLOBAL_CONSTANTS = {"inf": np.inf, "Inf": np.inf}


class Unsupported(Exception):
    """The text uses something the compiler does not handle: pandas evaluates it."""


@dataclass(frozen=True, slots=True)
class _Node:
    """A compiled subexpression: ``run``, or the ``value`` of a subexpression without columns."""

    run: Run | None = None
    value: Any = None
    #: A literal or global constant (pandas' Constant term): compared with a datetime column, it
    #: is converted to a Timestamp.
    literal: bool = False
    #: Statically boolean in pandas' typing (comparisons, and/or, bool constants).
    boolean: bool = False
    #: The position of a bare column name in the column list, else -1.
    column: int = -1

    @property
    def scalar(self) -> bool:
        return self.run is None


_MEMBERSHIP = (ast.In, ast.NotIn, ast.Eq, ast.NotEq)


# ---- the compiler ---------------------------------------------------------------------------
class _Compiler(ast.NodeVisitor):
    """Builds the closure tree; raises :class:`Unsupported` for anything it does not know."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.functions: set[str] = set()

    def compile(self, node: ast.AST) -> _Node:
        method = getattr(self, f"compile_{type(node).__name__}", None)
        if method is None:
            raise Unsupported(type(node).__name__)
        result: _Node = method(node)
        return result

    def compile_Expression(self, node: ast.Expression) -> _Node:
        return self.compile(node.body)

    def compile_Name(self, node: ast.Name) -> _Node:
        if node.id in _GLOBAL_CONSTANTS:
            return _Node(value=_GLOBAL_CONSTANTS[node.id], literal=True)
        if node.id not in self.names:
            self.names.append(node.id)
        k = self.names.index(node.id)
        return _Node(run=lambda c, ix: c[k], column=k)

    def compile_Constant(self, node: ast.Constant) -> _Node:
        if type(node.value) not in (int, float, str, bool):
            raise Unsupported(f"constant {node.value!r}")
        return _Node(value=node.value, literal=True, boolean=type(node.value) is bool)

    def compile_UnaryOp(self, node: ast.UnaryOp) -> _Node:
        on_scalar, on_array = UNARY[type(node.op)]
        operand = self.compile(node.operand)
        if operand.run is None:
            return _fold(lambda: on_scalar(operand.value), operand.boolean)
        inner = operand.run
        return _Node(run=lambda c, ix: on_array(inner(c, ix), ix), boolean=operand.boolean)

    def compile_BinOp(self, node: ast.BinOp) -> _Node:
        if type(node.op) not in ARITH:
            raise Unsupported(type(node.op).__name__)
        op, reflected, fill = ARITH[type(node.op)]
        assert PANDAS is not None
        left, right = self.compile(node.left), self.compile(node.right)
        if any(side.run is None and type(side.value) is str for side in (left, right)):
            raise Unsupported("arithmetic with a string")
        return _binary(arith(op, getattr(PANDAS["rop"], reflected), fill), op, left, right)

    def compile_BoolOp(self, node: ast.BoolOp) -> _Node:
        op = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        return reduce(lambda a, b: _logical_node(op, a, b), map(self.compile, node.values))

    def compile_Compare(self, node: ast.Compare) -> _Node:
        lefts = [node.left, *node.comparators[:-1]]
        parts = [
            self._compare(*pair) for pair in zip(lefts, node.ops, node.comparators, strict=True)
        ]
        return reduce(lambda a, b: _logical_node(operator.and_, a, b), parts)

    def compile_Call(self, node: ast.Call) -> _Node:
        assert PANDAS is not None
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in PANDAS["mathops"] or node.keywords:
            raise Unsupported("call")
        assert name is not None
        if len(node.args) != (2 if name == "arctan2" else 1):
            raise Unsupported(f"{name} with {len(node.args)} arguments")
        self.functions.add(name)
        fn = getattr(np, name)
        args = [self.compile(arg) for arg in node.args]
        if all(arg.run is None for arg in args):
            return _fold(lambda: fn(*(arg.value for arg in args)), False)
        apply, runs = call(fn), [_runner(arg) for arg in args]
        return _Node(run=lambda c, ix: apply([run(c, ix) for run in runs], ix))

    def _compare(self, left_ast: ast.expr, op: ast.cmpop, right_ast: ast.expr) -> _Node:
        if isinstance(op, _MEMBERSHIP):
            member = self._membership(left_ast, op, right_ast)
            if member is not None:
                return member
        if type(op) not in COMPARE:
            raise Unsupported(type(op).__name__)
        fn = COMPARE[type(op)]
        left, right = self.compile(left_ast), self.compile(right_ast)
        apply = compare(fn)
        if (left.column >= 0 and right.literal) or (right.column >= 0 and left.literal):
            apply = converting(apply, left.literal, left.value if left.literal else right.value)
        node = _binary(apply, fn, left, right)
        return _Node(node.run, node.value, boolean=True)

    def _membership(self, left: ast.expr, op: ast.cmpop, right: ast.expr) -> _Node | None:
        """``==``/``!=``/``in``/``not in`` with a string or list literal: pandas' ``isin``."""
        sides = [left, right]
        literal = [isinstance(s, ast.List | ast.Tuple) or _is_str(s) for s in sides]
        if not any(literal):
            if isinstance(op, ast.In | ast.NotIn):
                raise Unsupported("'in' without a list")
            return None
        column = sides[literal.index(False)] if literal.count(True) == 1 else None
        if not isinstance(column, ast.Name) or column.id in _GLOBAL_CONSTANTS:
            raise Unsupported("membership test of something other than a column")
        if (
            isinstance(op, ast.In | ast.NotIn)
            and isinstance(right, ast.List | ast.Tuple)
            and any(isinstance(elt, ast.Name) for elt in right.elts)
        ):
            raise Unsupported("a name in an 'in' list")  # pandas unrolls it into comparisons
        values = self._values(sides[literal.index(True)])
        node = self.compile(column)
        apply, inner = isin(values, isinstance(op, ast.NotIn | ast.NotEq)), _runner(node)
        return _Node(run=lambda c, ix: apply(inner(c, ix), ix), boolean=True)

    def _values(self, node: ast.expr) -> list[Any]:
        """A list literal's values (or a string's, as a list of one), as pandas builds them."""
        if _is_str(node):
            return [node.value]  # type: ignore[attr-defined]
        assert isinstance(node, ast.List | ast.Tuple)
        values = [self.compile(elt) for elt in node.elts]
        if any(v.run is not None for v in values):
            raise Unsupported("a list with column names")
        return [v.value for v in values]


def _is_str(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is str


def _runner(node: _Node) -> Run:
    if node.run is not None:
        return node.run
    value = node.value
    return lambda c, ix: value


def _fold(compute: Callable[[], Any], boolean: bool) -> _Node:
    """A subexpression without columns, computed once as pandas would on every call."""
    try:
        with np.errstate(all="ignore"):
            return _Node(value=compute(), boolean=boolean)
    except Exception as exc:  # pandas reports it, in its own words
        raise Unsupported(f"constant expression fails: {exc}") from None


def _binary(
    apply: Callable[[Any, Any, pd.Index | None], Any],
    on_scalars: Callable[[Any, Any], Any],
    left: _Node,
    right: _Node,
) -> _Node:
    lrun, rrun, lvalue, rvalue = left.run, right.run, left.value, right.value
    if lrun is None and rrun is None:
        return _fold(lambda: on_scalars(lvalue, rvalue), False)
    if lrun is not None and rrun is not None:
        return _Node(run=lambda c, ix: apply(lrun(c, ix), rrun(c, ix), ix))
    if lrun is not None:
        return _Node(run=lambda c, ix: apply(lrun(c, ix), rvalue, ix))
    assert rrun is not None
    return _Node(run=lambda c, ix: apply(lvalue, rrun(c, ix), ix))


def _logical_node(op: Callable[[Any, Any], Any], left: _Node, right: _Node) -> _Node:
    if (left.run is None or right.run is None) and not (left.boolean and right.boolean):
        raise Unsupported("a bool operator with a constant")  # pandas refuses it
    node = _binary(logical(op), op, left, right)
    return _Node(node.run, node.value, boolean=True)


# ---- compiled expressions -------------------------------------------------------------------
def _cleaned(label: Any) -> Any:
    """The name a column is known by in an expression (pandas' backtick cleaning)."""
    if type(label) is str and label.isidentifier() and not iskeyword(label):
        return label
    assert PANDAS is not None
    return PANDAS["clean"](label)


class Compiled:
    """An expression compiled once; :meth:`values` computes it on a frame."""

    __slots__ = ("_by_names", "_cache", "_functions", "_names", "_quiet", "_root", "text")

    def __init__(
        self, text: str, names: list[str], functions: set[str], root: _Node, quiet: bool
    ) -> None:
        self.text = text
        self._quiet = quiet
        self._names = tuple(names)
        self._functions = frozenset(functions)
        self._root = root
        #: The last frame's column labels and where the expression's names are among them.
        self._cache: tuple[pd.Index, list[int] | None] | None = None
        #: The same for the last :class:`Columns`' names.
        self._by_names: tuple[tuple[str, ...], list[int] | None] | None = None

    def values(self, frame: pd.DataFrame) -> Any:
        """The expression's column as an array (a view of the frame for a bare column name:
        treat it as read-only); raises :class:`Fallback` when pandas must evaluate it."""
        root = self._root
        if root.run is None:  # no columns: pandas broadcasts the constant
            return pd.Series(root.value, index=frame.index)._values
        columns = frame.columns
        cache = self._cache
        if cache is None or not same_labels(cache[0], columns):
            cache = self._cache = (columns, self._locate(columns))
        locations = cache[1]
        if locations is None:
            raise Fallback("a name is not a column of this frame")
        cols = [column_at(frame, i) for i in locations]
        if not self._quiet:
            return root.run(cols, frame.index)
        return quietly(root.run, cols, frame.index)  # pandas silences numpy in arithmetic

    def column_values(self, cols: Columns) -> Any:
        """:meth:`values` on the frame ``cols`` stands for, from its arrays: the same array,
        or None where pandas must evaluate it (on the frame). Operations that go through
        Series get a default index: all operands share one index, so the values are the same."""
        root = self._root
        try:
            if root.run is None:
                return pd.Series(root.value, index=cols.index)._values
            names = cols.names
            cache = self._by_names
            if cache is None or (cache[0] is not names and cache[0] != names):
                cache = self._by_names = (names, self._locate(labels(names)))
            locations = cache[1]
            if locations is None:
                return None
            arrays = cols.arrays
            c = [arrays[i] for i in locations]
            result = quietly(root.run, c, None) if self._quiet else root.run(c, None)
        except Exception:  # Fallback, or an error pandas words its own way
            return None
        if len(result) != cols.length:
            return None
        return result

    def _locate(self, columns: pd.Index) -> list[int] | None:
        """Positions of the names, resolved as pandas resolves them (cleaned labels, the last of
        equal ones); None if one is not a unique column or a function name is a column."""
        if isinstance(columns, pd.MultiIndex):
            return None
        labels: dict[Any, Any] = {}
        for label in columns:
            labels[_cleaned(label)] = label
        if any(name in labels for name in self._functions):
            return None
        found = []
        for name in self._names:
            if name not in labels:
                return None
            loc = columns.get_loc(labels[name])
            if type(loc) is not int:
                return None
            found.append(loc)
        return found


def compile_expression(text: str) -> Compiled | None:
    """``text`` compiled, or None where pandas must evaluate it every time."""
    if PANDAS is None:
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        return None  # pandas evaluates each line on its own
    try:
        tree = ast.parse(PANDAS["preparse"](lines[0]), mode="eval")
        compiler = _Compiler()
        root = compiler.compile(tree)
    except Exception:  # Unsupported, or text pandas itself will refuse
        return None
    quiet = any(isinstance(n, ast.BinOp | ast.UnaryOp | ast.Call) for n in ast.walk(tree))
    return Compiled(text, compiler.names, compiler.functions, root, quiet)
