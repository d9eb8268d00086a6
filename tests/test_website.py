"""The course website (`python website/build.py`): built from every chapter present, and, in a
real browser, every page draws its figures and asks nothing of the network.

The unit tests below need no browser; one runs a two-cell notebook under nbval to show that the
test suite records each solution notebook it runs into the site's cache, under the key the build
looks up, and that a changed notebook is never served from it. The browser test builds the site
(it runs after the solution notebooks, so it executes only what nbval did not run; run alone, it
executes each solution notebook once, and later runs and fresh clones of the same commit reuse
the cache in ~/.cache/digsite/website/), serves it on 127.0.0.1, opens every page in headless
Chromium, records every request, and checks that plotly, circuitsvis and MathJax rendered,
widget snapshots are there, search finds a chapter, and the downloads are the clean notebooks.
Screenshots go to build/browser/. Skipped with a reason without chromium, playwright or mkdocs,
except in CI (a failure there).
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from offline_browser import CHROMIUM, launch_chromium

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("website_build", ROOT / "website" / "build.py")
site = sys.modules["website_build"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(site)


# --- unit tests: no build, no browser ---------------------------------------------------------


def test_every_chapter_is_found_with_its_title():
    chapters = site.find_chapters()
    assert [c.stem for c in chapters] == sorted(p.stem for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    assert all(c.exercise.exists() and c.title and not c.title.startswith("[") for c in chapters)
    assert chapters[1].title.startswith("Chapter 1")


def test_cache_key_follows_the_notebook_and_the_package(tmp_path):
    a, b = tmp_path / "a.ipynb", tmp_path / "b.ipynb"
    a.write_text("{}")
    b.write_text("{ }")
    assert site.cache_key(a, "p") == site.cache_key(a, "p")
    assert site.cache_key(a, "p") != site.cache_key(b, "p")
    assert site.cache_key(a, "p") != site.cache_key(a, "q")


def _tiny_notebook(path: Path, sources: list[str]) -> Path:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _run(recorder, code_cell: int, text: str) -> None:
    """Feed the recorder what a kernel says when a cell prints `text`."""
    for msg_type, content in (("stream", {"name": "stdout", "text": text}), ("status", {"execution_state": "idle"})):
        msg = {"msg_type": msg_type, "header": {"msg_type": msg_type}, "parent_header": {"msg_id": "x"}}
        recorder.message({**msg, "content": content, "metadata": {}}, code_cell)
    recorder.finished(code_cell, recorder.nb.cells[code_cell].source, passed=True)


def test_recorded_notebook_is_what_the_build_looks_up(tmp_path):
    nb = _tiny_notebook(tmp_path / "solutions" / "09_tiny.ipynb", ["print(1)", "if online():\n    print(2)"])
    recorder = site.Recorder(nb, cache=tmp_path / "cache")
    _run(recorder, 0, "1\n")
    _run(recorder, 1, "2 (from the stand-in)\n")
    target = recorder.save()
    assert target == site.cache_entry(nb, tmp_path / "cache", site.package_fingerprint())
    cells = json.loads(target.read_text())["cells"]
    assert [c["execution_count"] for c in cells] == [1, 2]
    assert "".join(cells[0]["outputs"][0]["text"]) == "1\n"
    assert "".join(cells[1]["outputs"][0]["text"]) == site.GPT2_NOTE  # never a stand-in's output


def test_a_recording_is_never_cached_for_a_changed_or_unfinished_notebook(tmp_path):
    nb = _tiny_notebook(tmp_path / "solutions" / "09_tiny.ipynb", ["print(1)", "print(2)"])
    cache = tmp_path / "cache"
    unfinished = site.Recorder(nb, cache=cache)
    _run(unfinished, 0, "1\n")  # the second cell never ran (deselected, or the run stopped)
    assert unfinished.save() is None
    failed = site.Recorder(nb, cache=cache)
    _run(failed, 0, "1\n")
    failed.finished(1, "print(2)", passed=False)
    assert failed.save() is None
    other_code = site.Recorder(nb, cache=cache)
    _run(other_code, 0, "1\n")
    other_code.finished(1, "print(3)", passed=True)  # nbval ran an older version of the cell
    assert other_code.save() is None
    edited = site.Recorder(nb, cache=cache)
    _run(edited, 0, "1\n")
    _run(edited, 1, "2\n")
    _tiny_notebook(nb, ["print(1)", "print(3)"])  # the notebook changed while it ran
    assert edited.save() is None
    assert not cache.exists() or not list(cache.iterdir())
    # and a recording of the old notebook is not what the build looks up for the new one
    assert site.cache_entry(nb, cache, site.package_fingerprint()) != edited.target


def test_the_test_suite_records_each_solution_notebook_it_runs_for_the_site(tmp_path):
    """nbval runs a notebook once; the root conftest.py hands its outputs to the site's cache."""
    import nbformat

    folder = ROOT / "build" / "record-test" / "solutions"
    shutil.rmtree(folder, ignore_errors=True)
    sources = ["x = 6 * 7\nprint(x)", "from IPython.display import HTML\nHTML('<b>bold</b>')"]
    nb = _tiny_notebook(folder / "99_tiny.ipynb", sources)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(nb)],
        cwd=ROOT,
        env={**os.environ, "DIGSITE_WEBSITE_CACHE": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    entry = site.cache_entry(nb, tmp_path, site.package_fingerprint())
    assert [p.name for p in tmp_path.iterdir()] == [entry.name]
    cells = nbformat.read(entry, as_version=4).cells
    assert cells[0].outputs[0].text == "42\n"
    assert cells[1].outputs[0].data["text/html"] == "<b>bold</b>"
    _tiny_notebook(nb, [*sources, "print('a new cell')"])
    assert not site.cache_entry(nb, tmp_path, site.package_fingerprint()).exists()  # the build executes it anew
    shutil.rmtree(folder.parent)


def test_static_outputs_replace_plotly_and_widgets():
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_s", "IPY_MODEL_o", "IPY_MODEL_t"]}},
        "s": {"model_name": "IntSliderModel", "state": {"description": "layer", "min": 0, "max": 3, "value": 1}},
        "t": {"model_name": "ToggleButtonsModel", "state": {"_options_labels": ["logit", "tuned"], "index": 1}},
        "o": {
            "model_name": "OutputModel",
            "state": {
                "outputs": [
                    {
                        "output_type": "display_data",
                        "data": {"application/vnd.plotly.v1+json": {"data": [], "layout": {}}},
                    },
                    {"output_type": "stream", "name": "stdout", "text": "a < b"},
                ]
            },
        },
    }
    nb = {
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state}}},
        "cells": [
            {
                "cell_type": "code",
                "outputs": [
                    {
                        "output_type": "display_data",
                        "data": {"application/vnd.plotly.v1+json": {"data": [{"y": ["</script>"]}]}},
                    },
                    {
                        "output_type": "execute_result",
                        "data": {
                            "application/vnd.jupyter.widget-view+json": {"model_id": "box"},
                            "text/plain": "Explorer(...)",
                        },
                    },
                ],
            },
        ],
    }
    site.static_outputs(nb)
    figure, widget = (o["data"]["text/html"] for o in nb["cells"][0]["outputs"])
    assert 'data-plotly-for="digsite-plotly-' in figure and '</script>"' not in figure and "<\\/script>" in figure
    assert "snapshot" in widget and 'type="range"' in widget and 'value="1"' in widget
    assert "data-plotly-for" in widget and "a &lt; b" in widget and 'chosen">tuned' in widget
    assert "widgets" not in nb["metadata"]  # no widget manager, which would come from a CDN
    bar = {"p": {"model_name": "FloatProgressModel", "state": {"value": 3, "max": 10}}}
    plain = site.widget_snapshot("p", bar)  # a progress bar (tqdm) is not called an explorer
    assert '<progress max="10" value="3">' in plain and "explorer" not in plain


def test_home_page_links_into_the_site():
    chapters = site.find_chapters()
    home = site.home_page(chapters, "owner/name")
    assert home.startswith("# Dig Site") and "## Run the tests" not in home
    assert "](01_hooks.ipynb)" in home and "](chapters/" not in home
    assert "](workshop.md)" in home
    # The README's Colab and Binder badges are images from other sites: the home page uses local copies.
    assert "](assets/colab-badge.svg)" in home and "](assets/binder-badge.svg)" in home
    assert not any(remote in home for remote in site.LOCAL_BADGES)


# --- the built site in a real browser ---------------------------------------------------------

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None
try:
    import mkdocs
    import mkdocs_jupyter  # noqa: F401
except ImportError:  # pragma: no cover - depends on the machine
    mkdocs = None
_missing = [
    w for w, ok in (("chromium", CHROMIUM), ("playwright", sync_playwright), ("mkdocs-jupyter", mkdocs)) if not ok
]
if _missing and os.environ.get("CI"):
    raise RuntimeError(f"CI must run the website test, but {', '.join(_missing)} is missing (see .ci/run).")
needs_browser = pytest.mark.skipif(
    bool(_missing), reason=f'needs {", ".join(_missing)}: apt-get install chromium; pip install -e ".[test]"'
)


@pytest.fixture(scope="module")
def served_site():
    """Build the site (cached), then serve build/website/ on 127.0.0.1 for the module's tests."""
    # The site renders what the notebooks print; whether the prose's numbers hold is nbval's test
    # (strict claims there). Here a timing claim may drift because two notebooks run at once.
    env = {**os.environ, "DIGSITE_STRICT_CLAIMS": "0"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "website" / "build.py"), "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    handler = functools.partial(QuietHandler, directory=str(site.OUT))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _harmless(console_error: str) -> bool:
    """MathJax 2's web-font probe asks Chromium for a font at about:blank, which Chromium refuses
    (no request leaves the page; every request is checked separately). Nothing else is excused."""
    return "about:blank" in console_error or console_error == "Failed to load resource: net::ERR_FAILED"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output for failures
        pass


@needs_browser
def test_every_page_renders_offline_in_a_real_browser(served_site):
    base = served_site
    shots = ROOT / "build" / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    chapters = site.find_chapters()
    pages = ["index.html", *(f"{c.stem}.html" for c in chapters), "workshop.html"]
    with_math = {f"{c.stem}.html" for c in chapters if "$$" in c.solution.read_text()}
    assert with_math, "no chapter has a formula: the MathJax check would be vacuous"
    requests: list[str] = []
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda err: problems.append(f"{page.url}: {err}"))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"{page.url}: HTTP {r.status} {r.url}"))
        page.on(
            "console",
            lambda msg: (
                msg.type == "error" and not _harmless(msg.text) and problems.append(f"{page.url}: console: {msg.text}")
            ),
        )
        for name in pages:
            page.goto(f"{base}/{name}", wait_until="load", timeout=120_000)
            page.wait_for_load_state("networkidle", timeout=120_000)
            n_plotly = page.locator("script[data-plotly-for]").count()
            if n_plotly:
                page.wait_for_function(
                    f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n_plotly}", timeout=60_000
                )
            n_cv = page.locator("[id^='circuits-vis-']").count()
            if n_cv:  # each circuitsvis figure drew something inside its div (React, from its inline JS)
                page.wait_for_function(
                    "[...document.querySelectorAll(\"[id^='circuits-vis-']\")].every(d => d.querySelectorAll('*').length >= 3)",
                    timeout=60_000,
                )
            if name in with_math:  # MathJax (the site's own copy) typeset the formulas
                page.wait_for_function(
                    "document.querySelectorAll('.MathJax, .MathJax_Display').length > 0", timeout=60_000
                )
            outputs = " ".join(page.locator(".jp-OutputArea-output").all_inner_texts())
            assert "Traceback" not in outputs, f"{name} shows a traceback"
            if name.startswith("0") and name != "index.html":
                assert page.locator("a[href$='.ipynb'][href^='downloads/']").count() >= 2, f"{name}: no download links"
                badge = page.locator("a[href^='https://colab.research.google.com/github/'] img").first
                assert badge.get_attribute("src").startswith("assets/"), f"{name}: the Colab badge is not local"
            page.screenshot(path=str(shots / f"website_{name.removesuffix('.html')}.png"))
            print(
                f"{name}: {n_plotly} plotly, {n_cv} circuitsvis, "
                f"{page.locator('.digsite-widget-static').count()} widget snapshot(s)"
            )
        # Pages with the three kinds of figure exist at all (so the checks above are not vacuous).
        page.goto(f"{base}/00_orientation.html", wait_until="networkidle")
        assert page.locator(".js-plotly-plot .main-svg").count() >= 1
        assert page.locator("[id^='circuits-vis-'] *").count() >= 5
        assert page.locator(".digsite-widget-static input[type=range]").count() >= 1
        # Search (a local index and web worker) finds the induction chapter.
        page.goto(f"{base}/index.html", wait_until="networkidle")
        page.locator(".md-search__input").click()
        page.keyboard.type("induction", delay=50)  # typed as a person would: the index loads meanwhile
        page.wait_for_function("document.querySelectorAll('.md-search-result__item').length > 0", timeout=60_000)
        hits = " ".join(page.locator(".md-search-result__item a").evaluate_all("els => els.map(e => e.href)"))
        assert "01_hooks.html" in hits, hits
        page.screenshot(path=str(shots / "website_search.png"))
        # The downloads are the clean exercise notebooks (no outputs, stubs in place).
        response = page.request.get(f"{base}/downloads/01_hooks.ipynb")
        assert response.ok
        nb = json.loads(response.body())
        assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
        assert any("NotImplementedError" in "".join(c["source"]) for c in nb["cells"])
        browser.close()
    outside = sorted(
        {
            u
            for u in requests
            if urlparse(u).hostname not in ("127.0.0.1",) and not u.startswith(("data:", "blob:", "about:"))
        }
    )
    assert outside == [], f"pages requested the network: {outside}"
    assert problems == [], f"JavaScript errors: {problems}"
