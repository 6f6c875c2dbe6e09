"""report.html in a real browser (Debian's headless Chromium): it renders, the tables and the plots are in the DOM
as data: URIs, and the page asks nothing of the network."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import tunebridge as tb
from tunebridge.plugins import load_registry
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

import fake_backend

pytest.importorskip("transformers", reason="compare evaluates models with transformers")
pytest.importorskip("matplotlib", reason="the report's plots need matplotlib (pip install 'tunebridge[report]')")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium)")

QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio"]


class Failing(fake_backend.FakeBackend):
    name = "failing"
    fail_at_step = 1


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    write_jsonl(tmp / "rows.jsonl", contract_rows(20))
    spec = sft_spec_dict(tmp / "rows.jsonl", "fake", max_steps=4)
    spec["name"] = "browser <check> & co"
    registry = load_registry([fake_backend, fake_backend.plugin_with(Failing)], entry_points=False)
    tb.compare(spec, backends="fake,packer,failing", output_dir=tmp / "out", registry=registry)
    return tmp / "out" / "report.html"


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *QUIET, f"--user-data-dir={tmp / 'profile'}", *args], capture_output=True,
                          text=True, timeout=120)


def test_the_html_references_nothing_outside_itself(report):
    html = report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "@import" not in html and "url(" not in html
    assert "<script" not in html.lower()


def test_chromium_renders_the_tables_and_the_plots(report, tmp_path):
    proc = chromium(tmp_path, "--dump-dom", report.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert "<title>tunebridge compare: browser &lt;check&gt; &amp; co</title>" in dom
    tables = re.findall(r"<table>.*?</table>", dom, re.S)
    assert len(tables) >= 4  # summary, differences, one per backend
    summary = tables[0]
    for name in ("(base model)", "fake", "packer", "failing"):
        assert f"<td>{name}</td>" in summary, name
    assert '<tr class="failed">' in summary
    images = re.findall(r'<img [^>]*src="([^"]+)"', dom)
    assert len(images) == 2 and all(src.startswith("data:image/png;base64,") for src in images)


def page_requests(page: Path, tmp: Path) -> set[str]:
    """Network URLs the page itself asked for, read from Chromium's net log (the browser's own background requests,
    initiator "not an origin", are left out). Also takes a screenshot into ``tmp/shot.png``."""
    netlog = tmp / "net.json"
    proc = chromium(tmp, f"--log-net-log={netlog}", "--window-size=1200,1600", f"--screenshot={tmp / 'shot.png'}",
                    page.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = netlog.read_text()
    log = json.loads(text if text.rstrip().endswith("}") else text.rstrip().rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return {e["params"]["url"] for e in log["events"] if e["type"] == start
            and e.get("params", {}).get("initiator") != "not an origin"
            and e["params"].get("url", "").startswith(("http:", "https:", "ws:", "wss:"))}


def test_the_net_log_check_sees_a_page_that_loads_from_the_network(tmp_path):
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/pixel.png"></body></html>')
    assert page_requests(page, tmp_path) == {"http://127.0.0.1:9/pixel.png"}


def test_the_page_makes_no_network_request(report, tmp_path):
    assert page_requests(report, tmp_path) == set()
    from PIL import Image

    image = Image.open(tmp_path / "shot.png").convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert image.size == (1200, 1600) and colours is not None and len(colours) > 50  # tables and plots drawn
