"""The python node runs code from the flow file, so it loads only on an explicit opt-in."""

from __future__ import annotations

import textwrap

from flowengine.testing import check_text, run_flow
from tests.helpers.cli import flowengine

CODE = "def process(df):\n    return df[df['value'] > 1].assign(doubled=df['value'] * 2)\n"


def nodes(code: str = CODE) -> dict:
    return {
        "src": {"type": "inject", "rows": [{"sensor": "a", "value": v} for v in (0.5, 2, 3)],
                "wires": ["py"]},
        "py": {"type": "python", "code": code, "wires": ["cap"]},
        "cap": {"type": "capture"},
    }  # fmt: skip


def test_refused_without_an_opt_in():
    checked = check_text(nodes())
    assert not checked.ok
    (problem,) = checked.errors
    assert problem.node == "py" and "runs Python code from the flow file" in problem.message


def test_runs_when_the_flow_opts_in():
    result = run_flow({"version": 1, "settings": {"allow_code": True}, "nodes": nodes()})
    frame = result.frame("cap")
    assert frame["value"].tolist() == [2, 3] and frame["doubled"].tolist() == [4, 6]


def test_code_without_process_or_with_a_syntax_error_is_a_validation_error():
    flow = {"version": 1, "settings": {"allow_code": True}}
    missing = check_text({**flow, "nodes": nodes("def other(df):\n    return df\n")})
    assert "must define a function `process(df)`" in str(missing.errors[0])
    broken = check_text({**flow, "nodes": nodes("def process(df)\n    return df\n")})
    assert "field 'code': line 1" in str(broken.errors[0])


def test_the_cli_flag_opts_in(cli_env, tmp_path):
    flow = tmp_path / "py.yaml"
    flow.write_text(
        textwrap.dedent(
            """\
            version: 1
            nodes:
              src: {type: inject, wires: [py]}
              py:
                type: python
                code: |
                  def process(df):
                      return df
                wires: [out]
              out: {type: debug}
            """
        )
    )
    refused = flowengine("validate", str(flow), env=cli_env)
    assert refused.returncode == 1 and "--allow-code" in refused.stderr
    assert flowengine("validate", "--allow-code", str(flow), env=cli_env).returncode == 0
    ran = flowengine("run", "--allow-code", "--no-live", str(flow), env=cli_env)
    assert ran.returncode == 0, ran.stderr
