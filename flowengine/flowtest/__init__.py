"""Flow tests: ``flowengine test`` and the pytest plugin (see docs/testing-flows.md).

The modules, in the order a run uses them: :mod:`.spec` (the format, as pydantic models),
:mod:`.load` (finding and reading test files, located problems), :mod:`.check` (cases checked
against their flow), :mod:`.run` (a case on a :class:`~flowengine.harness.FlowHarness`; many in
a process pool), :mod:`.expect` and :mod:`.diff` (expectations, readable frame diffs),
:mod:`.report` (terminal summary, JUnit XML), :mod:`.cli` and :mod:`.plugin`.
"""
