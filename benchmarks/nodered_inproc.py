"""Node-RED's in-process analytic chain, run from a flowengine benchmark for a side-by-side
figure: ``run_inproc.py flow_inproc_change.json --window 1000`` of the shared harness
(``../shared/bench/nodered``; its README says how to install Node-RED; set ``SCRATCH`` to
where it is installed, e.g. ``SCRATCH=/tmp/nrb``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "nodered"


def node_red_chain(window: int = 1000, flow: str = "flow_inproc_change.json") -> float | None:
    """Node-RED's msg/s through ``flow``, or None (the reason on stderr) without Node-RED."""
    script = HARNESS / "run_inproc.py"
    if not script.exists():
        print(f"Node-RED harness not found at {script}", file=sys.stderr)
        return None
    command = [sys.executable, str(script), flow, "--window", str(window)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        print(f"Node-RED run failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    print(f"Node-RED: {json.dumps(result)}", file=sys.stderr)
    return float(result["rate"]) if result.get("ok") else None
