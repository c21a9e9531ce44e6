"""Debian's headless Chromium, offline: the one set of flags and options for the browser tests,
the canvas benchmark and the docs screenshot.

Free of NiceGUI and pytest; Selenium is imported only when options are built.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver import ChromeOptions

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def available() -> bool:
    """Whether Chromium and its chromedriver are installed (apt-get install chromium
    chromium-driver)."""
    return os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


def chrome_args(window: str = "1280,900") -> list[str]:
    """Headless, sandbox-free (containers), no GPU, and no traffic of its own (updates, sync,
    QUIC), so a run touches nothing but the page under test."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={window}",
    ]


def chrome_options(window: str = "1280,900") -> ChromeOptions:
    """Selenium options for Debian's Chromium with `chrome_args`. Also points Selenium at
    Debian's chromedriver and keeps Selenium Manager offline (it must not download a driver),
    unless SE_OFFLINE / SE_CHROMEDRIVER are already set."""
    from selenium.webdriver import ChromeOptions

    os.environ.setdefault("SE_OFFLINE", "true")
    os.environ.setdefault("SE_CHROMEDRIVER", CHROMEDRIVER)
    options = ChromeOptions()
    for arg in chrome_args(window):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    return options
