"""The event loop `flowengine run` chooses: uvloop when installed, unless told otherwise."""

from __future__ import annotations

import asyncio

import pytest

from flowengine import loops


def test_uvloop_is_chosen_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop", reason="uvloop (flowengine[fast]) is not installed")
    monkeypatch.delenv("FLOWENGINE_LOOP", raising=False)
    assert loops.loop_factory() is uvloop.new_event_loop

    async def kind() -> str:
        await asyncio.sleep(0)
        return loops.name()

    assert loops.run(kind()) == "uvloop"


def test_flowengine_loop_asyncio_keeps_asyncios_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWENGINE_LOOP", "asyncio")
    assert loops.loop_factory() is None

    async def kind() -> str:
        return loops.name()

    assert loops.run(kind()) == "asyncio"
