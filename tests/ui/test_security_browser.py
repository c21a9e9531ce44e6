"""With a password, NiceGUI's socket and uploads need the logged-in browser session (issue 11,
item 4): a client id alone (seen in a page, a log, a screenshot) drives nothing."""

from __future__ import annotations

from pathlib import Path

import httpx
from nicegui import Client, app, ui
from nicegui.testing import Screen
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from flowengine.ui.app import Editor, EditorConfig, root
from flowengine.ui.auth import protect_sockets
from tests.helpers.peers import wait_until
from tests.helpers.samples import SAMPLE
from tests.helpers.uiharness import (  # noqa: F401
    nicegui_chrome_options,
    nicegui_remove_all_screenshots,
    no_main_file,
    own_port,
    requires_chromium,
)

pytest_plugins = ["nicegui.testing.screen_plugin"]
pytestmark = requires_chromium
PASSWORD = "s3cret!"
EXTRA = "nodes:\n  extra: {type: debug}\n"


def upload_url() -> tuple[str, str]:
    """(client id, upload URL) of the import dialog's upload element in the browser's page."""
    for client in list(Client.instances.values()):
        for element in list(client.elements.values()):
            if isinstance(element, ui.upload):
                return client.id, str(element.props["url"])
    raise LookupError("no upload element")


def test_socket_and_upload_need_the_login_session(screen: Screen, tmp_path: Path) -> None:
    flow = tmp_path / "line3.yaml"
    flow.write_text(SAMPLE)
    editor = Editor(EditorConfig(flow, password=PASSWORD, run=False))
    app.on_shutdown(editor.shutdown)
    protect_sockets(app, editor.guard)  # as `flowengine edit` does
    screen.ui_run_kwargs.update(root=root(editor), storage_secret="test-secret")
    screen.open("/")
    driver = screen.selenium
    password = driver.find_element(By.CSS_SELECTOR, "input[type=password]")
    password.send_keys(PASSWORD + Keys.ENTER)
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".fe-canvas"), 20, "the editor")
    driver.find_element(By.XPATH, '//button[.//i[text()="file_upload"]]').click()
    screen.wait_for("Import nodes")
    client_id, url = upload_url()
    before = len(editor.model.nodes)
    base = f"http://127.0.0.1:{Screen.PORT}"
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    files = {"file": ("extra.yaml", EXTRA.encode(), "application/yaml")}
    polling = f"/_nicegui_ws/socket.io/?EIO=4&transport=polling&client_id={client_id}"

    with httpx.Client(base_url=base, timeout=10) as stranger:  # no session cookie
        assert stranger.post(url, files=files).status_code == 403
        assert stranger.get(polling).status_code == 403
        stranger.get("/")  # a session of its own, on the login page: not the editor's owner
        assert stranger.cookies.get("session")
        assert stranger.post(url, files=files).status_code == 403
        assert stranger.get(polling).status_code == 403
    assert len(editor.model.nodes) == before

    with httpx.Client(base_url=base, timeout=10, cookies=cookies) as owner:  # the browser's
        assert owner.get(polling).status_code == 200
        assert owner.post(url, files=files).status_code == 200
    wait_until(lambda: len(editor.model.nodes) == before + 1, 10, "the upload imported")
