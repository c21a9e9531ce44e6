"""Browser-test helpers: Debian's Chromium for NiceGUI's Screen fixture, offline; calls into
the NiceGUI server's event loop; pointer gestures at page coordinates.

A test module uses them with::

    pytest_plugins = ["nicegui.testing.screen_plugin"]
    from tests.helpers.uiharness import (  # noqa: F401
        nicegui_chrome_options,
        nicegui_remove_all_screenshots,
        no_main_file,
    )
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver import ActionChains
from selenium.webdriver.remote.webelement import WebElement

from flowengine.ui import browser

#: On a machine without them (a fresh laptop) the browser tests skip; the User tests still run.
requires_chromium = pytest.mark.skipif(
    not browser.available(),
    reason="headless-browser tests need Debian's chromium and chromium-driver "
    "(apt-get install chromium chromium-driver; .ci/run installs them)",
)


@pytest.fixture(scope="session")
def nicegui_chrome_options() -> webdriver.ChromeOptions:
    """Overrides the Screen plugin's options: Debian's Chromium and chromedriver, no network."""
    options = browser.chrome_options()
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the fixture checks JS errors
    return options


@pytest.fixture(scope="session")
def nicegui_remove_all_screenshots(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Overrides the Screen plugin's: its screenshots go to a temporary folder, not the work tree."""
    from nicegui.testing.screen import Screen

    Screen.SCREENSHOT_DIR = tmp_path_factory.mktemp("screenshots")


@pytest.fixture(autouse=True)
def no_main_file(request: pytest.FixtureRequest) -> None:
    """The tests define their pages themselves; there is no main.py for the Screen to run."""
    request.applymarker(pytest.mark.nicegui_main_file(""))


@pytest.fixture(autouse=True)
def own_port() -> Iterator[None]:
    """A free port instead of the Screen's fixed one, which another test run may hold
    (browser test modules import it as an autouse fixture)."""
    from nicegui.testing import Screen

    from tests.helpers.peers import free_port

    fixed = Screen.PORT
    Screen.PORT = free_port()
    yield
    Screen.PORT = fixed


def in_loop(fn: Callable[..., Any], *args: Any, timeout: float = 10.0) -> Any:
    """Call fn(*args) in the NiceGUI server's event loop (from the test thread); return its result."""
    from nicegui import core

    async def call() -> Any:
        return fn(*args)

    return asyncio.run_coroutine_threadsafe(call(), core.loop).result(timeout)


def box(element: WebElement) -> dict[str, float]:
    """The element's box as drawn, in viewport coordinates (`element.rect` ignores CSS
    transforms such as the canvas zoom)."""
    return element.parent.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return {x: r.x, y: r.y, width: r.width, height: r.height};",
        element,
    )


def centre(element: WebElement) -> tuple[float, float]:
    """The element's centre as drawn, in viewport coordinates."""
    r = box(element)
    return r["x"] + r["width"] / 2, r["y"] + r["height"] / 2


def drag_path(
    driver: webdriver.Remote,
    origin: WebElement,
    start: tuple[float, float],
    steps: list[tuple[float, float]],
    hold: str | None = None,
) -> None:
    """Press at `start` (viewport coordinates), move through `steps`, release; `hold` is a
    modifier key held throughout. Offsets are taken from the centre of `origin`, as Selenium does,
    each time an action runs: so `origin` must not move during the gesture (use the canvas)."""
    ox, oy = centre(origin)
    actions = ActionChains(driver, duration=0)
    if hold:
        actions.key_down(hold)
    actions.move_to_element_with_offset(origin, int(start[0] - ox), int(start[1] - oy))
    actions.click_and_hold()
    for x, y in steps:
        actions.move_to_element_with_offset(origin, int(x - ox), int(y - oy))
    actions.release()
    if hold:
        actions.key_up(hold)
    actions.perform()
