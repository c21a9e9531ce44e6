"""``rest_in``'s ``base_url`` and ``rest_out``'s ``url`` are checked by ``flowengine validate``,
at their line: ``http(s)://host[:port]``; an empty ``base_url`` (whole URLs as endpoints) passes."""

from __future__ import annotations

import pytest

from flowengine.testing import check_text

FLOW = """\
version: 1
nodes:
  src:
    type: rest_in
    base_url: {base}
    wires: [out]
  out:
    type: rest_out
    url: {url}
"""
GOOD = "https://api.plant.local"


def errors(base: str = GOOD, url: str = GOOD) -> list[str]:
    return [str(p) for p in check_text(FLOW.format(base=base, url=url), path="f.yaml").errors]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("hooks.plant.local/x", "must start with http:// or https://"),
        ("ftp://hooks/x", "must start with http:// or https://"),
        ("https://hooks:99999/x", "port '99999' must be a number from 1 to 65535"),
        ("https:///x", "names no host"),
        ("'https://u:hunter2@a b/x'", "'a b' is not a host name"),
    ],
)
def test_bad_urls_fail_at_their_line(url: str, message: str) -> None:
    (sink,) = errors(url=url)
    assert sink.startswith("f.yaml:9:5: node 'out': field 'url': ") and message in sink
    assert "hunter2" not in sink
    (source,) = errors(base=url)
    assert source.startswith("f.yaml:5:5: node 'src': field 'base_url': ") and message in source


@pytest.mark.parametrize("url", [GOOD, "http://127.0.0.1:8080/api/", "https://[::1]:8443"])
def test_http_urls_pass(url: str) -> None:
    assert errors(url, url) == []


def test_empty_base_url_passes_empty_url_does_not() -> None:
    assert errors(base="''") == []
    assert errors(url="''") == [
        "f.yaml:9:5: node 'out': field 'url': '' must start with http:// or https://"
    ]
