"""The HTML report of a tiny run in a real headless Chromium at a 1,280 px viewport: no
horizontal scroll, every image loaded, no console errors, the summary table present.

Chromium runs as Debian's ``chromium-headless-shell`` (or ``chromium``); ``.ci/run``
installs it. A probe script injected at the top of a copy of the page records errors
(``window.onerror``, failed resources, ``console.error``) and, after ``load``, the page's
measurements into a ``<pre id="probe">`` that ``--dump-dom`` prints.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from experiments.report import write_report
from experiments.runner import run_scenario
from experiments.scenario import load_scenario

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser")
VIEWPORT = (1280, 900)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t !== window && t.tagName ? 'failed to load ' + t.tagName : String(e.message));
}, true);
var __consoleError = console.error;
console.error = function () {
  window.__errors.push('console.error: ' + Array.from(arguments).join(' '));
  __consoleError.apply(console, arguments);
};
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var out = {
    innerWidth: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    bodyScrollWidth: document.body.scrollWidth,
    images: imgs.length,
    broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
      .map(function (i) { return i.alt; }),
    summaryRows: document.querySelectorAll('table#summary tbody tr').length,
    errors: window.__errors
  };
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def find_browser() -> str | None:
    """Path of an installed headless Chromium, None if there is none."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def probe_page(page: str, browser: str) -> dict[str, Any]:
    """Load ``page`` (HTML text) with the probe in headless Chromium at :data:`VIEWPORT`;
    return the probe's measurements plus ``stderr_errors`` (console errors Chromium logged)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "page.html"
        path.write_text(page.replace("<head>", "<head>" + PROBE, 1))
        command = [
            browser,
            *FLAGS,
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
            "--enable-logging=stderr",
            "--dump-dom",
            path.as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{browser} failed ({done.returncode}): {done.stderr[-2000:]}"
    start = done.stdout.find('<pre id="probe">')
    assert start >= 0, f"the probe did not run; DOM tail: {done.stdout[-500:]}; stderr: {done.stderr[-1000:]}"
    text = done.stdout[start + len('<pre id="probe">') : done.stdout.index("</pre>", start)]
    result = json.loads(html.unescape(text))
    result["stderr_errors"] = [
        line for line in done.stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or ":ERROR:" in line)
    ]
    return result


TINY = {
    "name": "tiny_browser",
    "description": "a tiny run for the browser test, with a sweep (facets, sweep plot, many arms)",
    "world": {"preset": "default", "overrides": {"catalog": {"n_items": 200}}},
    "agents": [{"name": "random"}, {"name": "linear_egreedy", "label": "egreedy"}],
    "horizon": {"steps": 8, "users": 8},
    "seeds": 2,
    "metrics": {"window": 4},
    "sweep": {"agents.egreedy.epsilon": [0.0, 0.2]},
}


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        pytest.skip(
            "no headless Chromium on PATH (looked for "
            + ", ".join(BROWSERS)
            + "): install it with `apt-get install -y chromium-headless-shell` (.ci/run does)"
        )
    return path


@pytest.mark.slow
def test_html_report_fits_1280px_loads_every_image_and_has_no_errors(browser: str, tmp_path: Path) -> None:
    scenario_file = tmp_path / "tiny.yaml"
    scenario_file.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    run_scenario(load_scenario(scenario_file), out, workers=1, progress=False)
    files = write_report(out, dpi=60)
    result = probe_page(files.html.read_text(), browser)
    assert result["innerWidth"] == VIEWPORT[0]
    assert result["scrollWidth"] <= result["innerWidth"], f"page scrolls sideways: {result}"
    assert result["images"] == len(files.figures) >= 3
    assert result["broken"] == []
    assert result["errors"] == [] and result["stderr_errors"] == []
    assert result["summaryRows"] >= 10  # the summary table, one row per metric


def test_probe_detects_a_wide_page_a_broken_image_and_a_script_error(browser: str) -> None:
    """The checks above can fail: a page 3,000 px wide with a broken image and a throwing
    script is caught on each count."""
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        "<div style='width:3000px'>wide</div><img alt='broken' src='data:image/png;base64,AAAA'>"
        "<script>undefinedFunction();</script></body></html>"
    )
    result = probe_page(page, browser)
    assert result["scrollWidth"] >= 3000 > result["innerWidth"]
    assert result["broken"] == ["broken"]
    assert any("undefinedFunction" in error for error in result["errors"])
    assert result["summaryRows"] == 0
