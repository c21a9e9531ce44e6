"""Take docs/editor.png: line3 in the editor, running, in headless Chromium.

Usage: python docs/editor_screenshot.py [URL] [OUT] [NODE]   (start `flowengine edit
flows/line3.yaml` first; the default URL is http://127.0.0.1:8080/; NODE is opened in the
property panel).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver import ActionChains
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from flowengine.ui.browser import CHROMEDRIVER, chrome_options


def shoot(url: str, out: Path, node: str | None = None, settle: float = 6.0) -> None:
    options = chrome_options(window="1440,980")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.get(url)
        deadline = time.monotonic() + 30
        while not driver.find_elements(By.CSS_SELECTOR, "[data-node-id]"):
            if time.monotonic() > deadline:
                raise SystemExit("the canvas showed no node within 30 s")
            time.sleep(0.2)
        if node:
            element = driver.find_element(By.CSS_SELECTOR, f'[data-node-id="{node}"]')
            ActionChains(driver).double_click(element).perform()
        time.sleep(settle)  # a few live ticks: status dots and rates
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_name("editor.png")
    shoot(url, out, sys.argv[3] if len(sys.argv) > 3 else None)
    print(out)
