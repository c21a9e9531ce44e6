"""NiceGUI User-simulation helpers shared by the editor's panel tests (no browser).

A test module uses them with::

    from tests.helpers.uiuser import editing, run, storage_in_tmp  # noqa: F401  (the fixture)
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from nicegui import app
from nicegui.storage import Storage
from nicegui.testing import User
from nicegui.testing.user_simulation import user_simulation

from flowengine.ui.app import Editor, root


@pytest.fixture(scope="module", autouse=True)
def storage_in_tmp() -> Iterator[None]:
    """NiceGUI keeps app.storage.user in files: put them in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="flowengine-ui-storage-"))
    Storage.path = folder
    app.storage = Storage()
    yield
    shutil.rmtree(folder, ignore_errors=True)


@asynccontextmanager
async def editing(editor: Editor) -> AsyncIterator[User]:
    """A simulated user of ``editor``'s pages; the editor's flow is stopped afterwards."""
    async with user_simulation(root=root(editor)) as user:
        try:
            yield user
        finally:
            await editor.shutdown()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run an async scenario on a fresh loop, failing it after a minute instead of hanging."""
    asyncio.run(asyncio.wait_for(scenario(), 60))


def open_debug(user: Any) -> None:
    """Open the Debug side tab (a hidden one draws no message)."""
    from nicegui import ui

    tab = next(t for t in user.find(kind=ui.tab).elements if t.props.get("name") == "Debug")
    tab.parent_slot.parent.set_value(tab)
