"""Faults with real processes: the consuming flow killed with SIGKILL and restarted, and the
NATS server itself killed and restarted under a running producer and consumer.

The first runs against the machine's NATS (only the flow dies); the second against a private
``nats-server`` (file storage on the same folder), so the shared server is never stopped.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections import Counter as Tally
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flowengine.checkpoint import CheckpointStore
from flowengine.runtime import Runtime
from flowengine.testing import Counter, check_text, run_flow
from tests.helpers.crash import (
    cli_env,
    count_rows,
    kill,
    rows,
    start,
    wait_for_checkpoint,
    wait_for_rows,
    wait_until,
)
from tests.helpers.nats import PrivateServer
from tests.helpers.peers import until

Names = Callable[[], tuple[str, str]]
#: Numbered rows the producer publishes (batches of ROWS), a few hundred per second.
BATCHES, ROWS = 300, 10
TOTAL = BATCHES * ROWS


def producer(url: str, stream: str, subject: str, pause: float = 0.01) -> dict[str, Any]:
    """`counter -> nats_out`, partitioned in 4 by seq: numbered rows, paced."""
    return {
        "src": {
            "type": "counter",
            "batches": BATCHES,
            "rows": ROWS,
            "pause": pause,
            "wires": ["out"],
        },
        "out": {
            "type": "nats_out",
            "servers": url,
            "stream": stream,
            "subject": subject,
            "partition_by": "seq",
            "partitions": 4,
        },
    }


CONSUMER = """
version: 1
settings: {{checkpoint: 200ms, retry: {{initial: 0.2, max: 1}}}}
nodes:
  in:
    type: nats_in
    servers: {url}
    stream: {stream}
    subject: {subject}
    durable: crash
    fetch_batch: 20
    fetch_timeout: 0.2
    wires: [db]
  db:
    type: sql_out
    connection_string: sqlite:///out.db
    table: readings
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_the_consuming_flow_stopped_mid_stream_then_restarted_loses_nothing(
    nats_url: str, names: Names, tmp_path: Path, sig: signal.Signals
) -> None:
    """nats_in -> sql_out, checkpointed, in a `flowengine run` process: stopped mid-stream
    and restarted, every row arrives; after kill -9 some twice (counted), after SIGTERM once."""
    stream, subject = names()
    published = threading.Event()

    def publish() -> None:
        run_flow(producer(nats_url, stream, subject), types={"counter": Counter}, timeout=120)
        published.set()

    run_flow(  # the stream exists before the consumer starts
        {**producer(nats_url, stream, subject), "src": {"type": "counter", "batches": 0}},
        types={"counter": Counter},
    )
    threading.Thread(target=publish, daemon=True).start()
    flow = tmp_path / "consume.yaml"
    flow.write_text(CONSUMER.format(url=nats_url, stream=stream, subject=subject))
    db, state = tmp_path / "out.db", tmp_path / ".flowengine" / "consume"
    first = start(flow, cli_env())
    wait_for_rows(db, "readings", first, TOTAL // 5)
    wait_for_checkpoint(state, first, 2)
    assert kill(first, sig) == (0 if sig == signal.SIGTERM else -signal.SIGKILL)  # mid-stream
    at_stop = count_rows(db, "readings")
    before = CheckpointStore(state).load()
    again = start(flow, cli_env())
    wait_until(
        again,
        lambda: published.is_set() and {r[0] for r in rows(db, "readings")} >= set(range(TOTAL)),
        "every row",
        timeout=120,
    )
    # the restart is running (its signal handlers installed) once it saved a checkpoint of its own
    wait_for_checkpoint(state, again, (before.id if before else 0) + 1)
    again.send_signal(signal.SIGTERM)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    seqs = [r[0] for r in rows(db, "readings")]
    repeated = len(seqs) - len(set(seqs))
    print(f"{sig.name} at {at_stop} rows; {len(seqs)} rows, {repeated} duplicates")
    assert set(seqs) == set(range(TOTAL))  # 0 lost
    if sig == signal.SIGTERM:
        assert repeated == 0  # a clean stop drains and checkpoints: each row once
    else:
        assert repeated < at_stop  # only what came after the last checkpoint came twice


def test_the_server_restarted_mid_stream_both_sides_resume_and_nothing_is_lost(
    private: Callable[[str], PrivateServer], names: Names
) -> None:
    server = private("")
    stream, subject = names()
    nodes: dict[str, Any] = {
        **producer(server.url, stream, subject, pause=0.005),
        "in": {
            "type": "nats_in",
            "servers": server.url,
            "stream": stream,
            "subject": subject,
            "durable": "resume",
            "fetch_timeout": 0.2,
            "wires": ["cap"],
        },
        "cap": {"type": "capture"},
    }
    flow = {"version": 1, "settings": {"retry": {"initial": 0.1, "max": 0.5}}, "nodes": nodes}

    def seqs(runtime: Runtime) -> list[int]:
        batches = runtime.node("cap").batches  # type: ignore[attr-defined]
        return [int(s) for b in batches for s in b.frame["seq"]]

    async def main() -> tuple[list[int], dict[str, Any]]:
        runtime = Runtime(check_text(flow, types={"counter": Counter}))
        task = asyncio.create_task(runtime.run())
        await until(lambda: len(seqs(runtime)) >= TOTAL // 4, task, what="a quarter")
        await asyncio.to_thread(server.kill)
        await until(lambda: runtime.stats["in"].state == "retrying", task, what="retrying")
        await asyncio.to_thread(server.start)
        await until(lambda: set(seqs(runtime)) >= set(range(TOTAL)), task, 60, "every row")
        runtime.stop()
        await task
        stats = {n: runtime.stats[n].snapshot() for n in ("out", "in")}
        return seqs(runtime), stats

    got, stats = asyncio.run(main())
    repeated = sum(n - 1 for n in Tally(got).values())
    print(f"{len(got)} rows, {repeated} duplicates; out {stats['out']['counters']}")
    print(f"in {stats['in']['counters']}, last error: {stats['in']['last_error']}")
    assert set(got) == set(range(TOTAL))
    assert stats["in"]["retries"] >= 1  # it did lose the server, and came back by itself
    frame = pd.DataFrame({"seq": got})
    assert frame["seq"].is_unique or repeated < TOTAL // 4


PRODUCER = """
version: 1
settings: {{checkpoint: 200ms, queue_size: 2}}
nodes:
  plc:
    type: simulate
    seed: 7
    realtime: false
    duration: {duration}
    batch_size: 20
    wires: [out]
  out:
    type: nats_out
    servers: {url}
    stream: {stream}
    subject: {subject}
    partition_by: sensor
    partitions: 4
"""


def _stream_rows(url: str, stream: str) -> tuple[int, list[tuple[Any, ...]]]:
    """How many messages a stream holds, and every row in them as (timestamp, sensor)."""
    from flowengine.nodes.nats.codec import decode
    from tests.helpers.nats import stored

    msgs = stored(stream, url)
    frames = [decode(m.data, m.headers) for m in msgs]
    found = [(str(t), s) for f in frames for t, s in zip(f["timestamp"], f["sensor"], strict=True)]
    return len(msgs), found


def test_a_producer_killed_and_restarted_resends_batches_the_server_drops(
    nats_url: str, names: Names, tmp_path: Path
) -> None:
    """simulate -> nats_out, checkpointed: after kill -9 the restart sends again what came
    after the last checkpoint; the same batches carry the same Nats-Msg-Id, so the stream
    ends up with exactly the messages of an uninterrupted run."""
    from tests.helpers.crash import run_to_end
    from tests.helpers.nats import sync

    duration = 400
    (reference, _), (crashed, subject) = names(), names()
    (tmp_path / "a").mkdir()
    whole = tmp_path / "a" / "produce.yaml"
    whole.write_text(
        PRODUCER.format(duration=duration, url=nats_url, stream=reference, subject=f"{subject}.r")
    )
    run_to_end(whole, cli_env())
    expected_msgs, expected = _stream_rows(nats_url, reference)
    assert len(expected) == len(set(expected)) > 0

    flow = tmp_path / "produce.yaml"
    flow.write_text(
        PRODUCER.format(duration=duration, url=nats_url, stream=crashed, subject=subject)
    )

    def messages() -> int:
        try:
            return int(sync(lambda js: js.stream_info(crashed), nats_url).state.messages)
        except Exception:  # not created yet
            return 0

    first = start(flow, cli_env())
    wait_until(first, lambda: messages() >= expected_msgs // 3, "a third of the messages")
    wait_for_checkpoint(tmp_path / ".flowengine" / "produce", first, 2)
    assert kill(first, signal.SIGKILL) == -signal.SIGKILL
    at_kill = messages()
    restart = Runtime(check_text(flow.read_text(), path=flow))  # in-process: its counters
    asyncio.run(asyncio.wait_for(restart.run(), 120))
    dropped = restart.stats["out"].counters.get("duplicates_dropped", 0)
    got_msgs, got = _stream_rows(nats_url, crashed)
    print(
        f"killed at {at_kill} of {expected_msgs} messages; the restart re-sent {dropped} "
        f"the server dropped; {got_msgs} stored"
    )
    assert sorted(got) == sorted(expected)  # nothing lost, nothing stored twice
    assert got_msgs == expected_msgs
