"""Stop signals: two delivered together are one request; a later second one forces the stop."""

from __future__ import annotations

import asyncio
import signal

from flowengine import cli


class FakeRuntime:
    def __init__(self) -> None:
        self.stopping = False
        self.stops = 0

    def stop(self) -> None:
        self.stopping = True
        self.stops += 1


def test_two_signals_together_count_as_one(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(cli.time, "monotonic", lambda: clock[0])

    async def scenario() -> tuple[FakeRuntime, bool, bool]:
        runtime = FakeRuntime()
        signals = cli._Signals(runtime)  # type: ignore[arg-type]
        signals.main_task = command = asyncio.create_task(asyncio.sleep(10))
        try:
            signals.on_signal(signal.SIGTERM)
            clock[0] += 0.05  # the process-group copy of the same signal
            signals.on_signal(signal.SIGTERM)
            together = signals.forced or command.cancelling() > 0
            clock[0] += 1.5  # a real second request
            signals.on_signal(signal.SIGINT)
            return runtime, together, signals.forced and command.cancelling() > 0
        finally:
            command.cancel()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    runtime, together, forced = asyncio.run(scenario())
    assert runtime.stops == 1 and not together and forced
