#!/usr/bin/env bash
# flowengine and Node-RED on the shared MQTT harness (../shared/bench), one after the other in
# one run, and one table: CPU per message, CPU share, p50/p99 latency, lost, sustained max.
#
#   benchmarks/vs_nodered.sh            # QoS 0 and 1, rates 2,000..25,000 msg/s, 8 s per rate
#   FLOWS="../shared/bench/flowengine/mqtt_bench.yaml benchmarks/flows/mqtt_bench_rows.yaml" \
#     benchmarks/vs_nodered.sh          # the harness's flow and the row-at-a-time one, side by side
#   benchmarks/vs_nodered.sh --quick    # rates 2,000, 10,000, 20,000; 5 s per rate
#
# The flow is the harness's: publisher -> Mosquitto (127.0.0.1:18830) -> engine (MQTT in,
# rolling mean of the last 10 values per sensor + threshold, MQTT out) -> Mosquitto ->
# subscriber, raw-socket clients. Each engine runs alone while it is measured; the whole run
# holds the machine's benchmark lock ($LOCK, default /tmp/bench.lock; LOCK= to skip).
#
# Environment:
#   SCRATCH     where Node-RED, Node.js 22 and the clients' python live (default /tmp/nrb);
#               setup: ../shared/bench/nodered/README.md "Setup"
#   BENCH       the shared harness (default: ../shared/bench next to this repository)
#   FE          the flowengine command (default: flowengine)
#   FE_BASELINE another flowengine command measured too (e.g. an older checkout), optional
#   FLOWS       the flowengine flows to measure, each a file with QOS_LEVEL for the QoS
#               (default: the harness's mqtt_bench.yaml); with several, each is a column
#               named after its file (benchmarks/flows/ holds variants of the same job)
#   ENGINES     which engines, in order (default: "nodered flowengine")
#   QOS         "0 1" (default); RATES0 / RATES1 override the rates per QoS
#   DURATION    seconds per rate (8, quick 5); BUDGET seconds per engine and QoS (100)
#   CLIENT      raw (default) or paho: the harness's publisher and subscriber
#   REPEAT      measure every engine this many times, interleaved (NR, flowengine, NR, ...:
#               the machine's drift hits both alike); the table shows medians, and the
#               ratios' range over the rounds (default 1)
# Results: one JSON line per engine and QoS in $SCRATCH/vs_nodered-<time>.jsonl, then the table.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
SCRATCH=${SCRATCH:-/tmp/nrb}; export SCRATCH
BENCH=${BENCH:-$(cd "$REPO/../shared/bench" 2>/dev/null && pwd || echo "$REPO/../shared/bench")}
FE=${FE:-flowengine}
ENGINES=${ENGINES:-nodered flowengine}
[[ -n ${FE_BASELINE:-} ]] && ENGINES="$ENGINES baseline"
QOS=${QOS:-0 1}
CLIENT=${CLIENT:-raw}
FLOWS=${FLOWS:-$BENCH/flowengine/mqtt_bench.yaml}
BUDGET=${BUDGET:-100}
REPEAT=${REPEAT:-1}
LOCK=${LOCK-/tmp/bench.lock}
if [[ ${1:-} == --quick ]]; then
    RATES0=${RATES0:-2000,10000,20000}; RATES1=${RATES1:-2000,10000,20000}; DURATION=${DURATION:-5}
else
    RATES0=${RATES0:-2000,5000,10000,15000,20000,25000}
    RATES1=${RATES1:-2000,5000,8000,10000,15000,20000,25000}
    DURATION=${DURATION:-8}
fi
PY=${PY:-$SCRATCH/nrbench-venv/bin/python}; export PY
NR=$BENCH/nodered
for need in "$NR/run_mqtt.py" "$PY" "$SCRATCH/nodered/node_modules/node-red/red.js"; do
    [[ -e $need ]] || { echo "missing $need: see $NR/README.md (Setup)" >&2; exit 1; }
done

if [[ -n $LOCK ]]; then  # the whole run holds the lock; started daemons must not inherit it
    exec {lockfd}>"$LOCK"
    echo "waiting for $LOCK ..." >&2
    flock "$lockfd"
fi
closed() { if [[ -n ${lockfd:-} ]]; then "$@" {lockfd}>&-; else "$@"; fi; }

started_broker=
pidfile=$SCRATCH/nrbench-mosquitto.pid
if ! { [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
    closed bash "$NR/start_broker.sh" >/dev/null && started_broker=1
fi
out=$SCRATCH/vs_nodered-$(date +%Y%m%d-%H%M%S).jsonl
: >"$out"
fe_pid=
cleanup() {
    if [[ -n $fe_pid ]]; then
        kill -INT "$fe_pid" 2>/dev/null || true
        wait "$fe_pid" 2>/dev/null || true
    fi
    if [[ -n $started_broker ]]; then closed bash "$NR/stop_broker.sh" >/dev/null || true; fi
}
trap cleanup EXIT

rep=1
record() {  # record ENGINE QOS RESULT-JSON (a run that printed nothing is noted, not fatal)
    [[ -n $3 ]] || { echo "$1, QoS $2: the harness printed no result" >&2; return 0; }
    "$PY" -c 'import json, sys; print(json.dumps({"engine": sys.argv[1], "qos": int(sys.argv[2]), "round": int(sys.argv[4]), "result": json.loads(sys.argv[3])}))' \
        "$1" "$2" "$3" "$rep" >>"$out"
}

harness() {  # harness QOS RATES [--engine-pid PID]: the JSON line run_mqtt.py prints last
    "$PY" "$NR/run_mqtt.py" --qos "$1" --client "$CLIENT" --rates "$2" --duration "$DURATION" \
        --budget "$BUDGET" "${@:3}" 2>/dev/null | tail -1
}

run_flowengine() {  # run_flowengine LABEL COMMAND QOS RATES FLOW
    local flow=$SCRATCH/vs-nodered-$1-q$3.yaml
    sed "s/QOS_LEVEL/$3/" "$5" >"$flow"
    # the engine itself (exec: $! is its PID, which the harness measures), without the lock
    # shellcheck disable=SC2086  # the command may carry arguments
    (
        if [[ -n ${lockfd:-} ]]; then exec {lockfd}>&-; fi
        BATCH=${BATCH:-1000} exec $2 run "$flow" --log-level warning
    ) >"$SCRATCH/vs-nodered-$1-q$3.log" 2>&1 &
    fe_pid=$!
    sleep 4  # connect and subscribe (the harness warms up at 1,000 msg/s before measuring)
    record "$1" "$3" "$(harness "$3" "$4" --engine-pid "$fe_pid")"
    kill -INT "$fe_pid" 2>/dev/null || true
    wait "$fe_pid" 2>/dev/null || true
    fe_pid=
}

for q in $QOS; do
    rates=$RATES0; [[ $q == 1 ]] && rates=$RATES1
    for rep in $(seq "$REPEAT"); do
    for engine in $ENGINES; do
        echo "== QoS $q: $engine ($rates msg/s, ${DURATION}s each; round $rep of $REPEAT)" >&2
        case $engine in
            nodered) record nodered "$q" "$(harness "$q" "$rates")" ;;
            flowengine | baseline)
                cmd=$FE; [[ $engine == baseline ]] && cmd=$FE_BASELINE
                for flow in $FLOWS; do
                    label=$engine
                    if [[ $FLOWS == *" "* ]]; then label=$(basename "$flow" .yaml); fi
                    [[ $engine == baseline ]] && label="$label-base"
                    run_flowengine "$label" "$cmd" "$q" "$rates" "$flow"
                done
                ;;
            *) echo "unknown engine $engine" >&2; exit 2 ;;
        esac
    done
    done
done

echo "results: $out"
"$PY" - "$out" <<'EOF'
import json, sys

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
engines = list(dict.fromkeys(r["engine"] for r in runs))
rounds = max(r.get("round", 1) for r in runs)
print(f"MQTT in -> rolling mean -> MQTT out (raw clients); per engine: CPU us/msg | CPU share | "
      f"p50 / p99 ms | lost" + (f"; medians of {rounds} interleaved rounds" if rounds > 1 else ""))
head = f"{'QoS':>3} {'rate/s':>7} | " + " | ".join(f"{e:^36}" for e in engines)
if "nodered" in engines and len(engines) > 1:
    head += " | " + " ".join(f"{e[:15] + '/NR':>18}" for e in engines if e != "nodered")
print(head)
print("-" * len(head))


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def merged(steps):
    """One step from several rounds' steps: medians, and the most lost."""
    if not steps:
        return None
    out = {k: median([s.get(k) for s in steps]) for k in
           ("engine_cpu_us_per_msg", "engine_cpu_share", "lat_p50_ms", "lat_p99_ms")}
    out["lost"] = max(s.get("lost", 0) for s in steps)
    return out


def cell(step):
    if step is None:
        return f"{'-':^36}"
    p50, p99 = step.get("lat_p50_ms"), step.get("lat_p99_ms")
    lat = f"{p50:.1f} / {p99:.0f}" if p50 is not None and p99 is not None else "-"
    cpu, share = step.get("engine_cpu_us_per_msg"), step.get("engine_cpu_share")
    cpu = "-" if cpu is None else f"{cpu:.1f}"
    share = "-" if share is None else f"{share:.2f}"
    return f"{cpu:>6} us {share:>5} {lat:>14} {step.get('lost', '-'):>6}"


def cpu(step):
    return (step or {}).get("engine_cpu_us_per_msg")


for q in sorted({r["qos"] for r in runs}):
    # (engine, rate) -> {round: step}
    by = {}
    for r in runs:
        if r["qos"] == q:
            for s in r["result"].get("steps", []):
                by.setdefault((r["engine"], s["rate"]), {})[r.get("round", 1)] = s
    for rate in sorted({rate for _, rate in by}):
        steps = {e: merged(list(by.get((e, rate), {}).values())) for e in engines}
        line = f"{q:>3} {rate:>7.0f} | " + " | ".join(cell(steps[e]) for e in engines)
        nr = steps.get("nodered")
        if nr and len(engines) > 1:
            ratios = []
            for e in engines:
                if e == "nodered":
                    continue
                a, b = cpu(steps[e]), cpu(nr)
                text = f"{a / b:.2f}" if a and b else "-"
                paired = [cpu(s) / cpu(by[("nodered", rate)][k])
                          for k, s in by.get((e, rate), {}).items()
                          if cpu(s) and cpu(by[("nodered", rate)].get(k))]
                if len(paired) > 1:
                    text += f" ({min(paired):.2f}-{max(paired):.2f})"
                ratios.append(f"{text:>18}")
            line += " | " + " ".join(ratios)
        print(line)
print()
print("highest sustained rate (no loss, output >= 95% of the target) / highest zero-loss rate:")
for r in runs:
    res = r["result"]
    stop = f"  (stopped: {res['stopped']})" if res.get("stopped") else ""
    print(f"  QoS {r['qos']} {r['engine']:>10}: {res.get('max_sustained_rate')} / "
          f"{res.get('max_zero_loss_rate')} msg/s{stop}")
EOF
