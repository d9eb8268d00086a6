"""Build the course as a static website: every chapter's solution executed offline, with its figures.

    python website/build.py              # build/website/ (cached: only changed chapters re-run)
    python website/build.py --jobs 2     # execute two notebooks at a time
    python website/build.py serve        # build, then serve it on http://127.0.0.1:8000

What it does, in order:
1. finds the chapters present (`solutions/NN_*.ipynb`, so new chapters appear by themselves);
2. executes each solution notebook with no network (HF_HUB_OFFLINE=1), caching the executed
   notebook under `~/.cache/digsite/website/` (or $DIGSITE_WEBSITE_CACHE), keyed by the
   notebook's bytes and the `digsite` package's files: a rebuild with nothing changed executes
   nothing, in this checkout or in a fresh clone of the same commit (as CI makes). The test
   suite fills the same cache: while nbval runs `solutions/NN_*.ipynb`, the root conftest.py
   hands every kernel message to a `Recorder`, which writes the executed notebook under the
   same key, so `pytest` executes each notebook once, not once for nbval and once for the site.
   Cells that try GPT-2 (they call `online()`) show a note instead of their output either way:
   the site is built offline, and under the test suite they ran on a random stand-in;
3. turns what only a live kernel can show into static HTML: plotly figures (drawn by a local
   copy of plotly.js), ipywidgets explorers (a snapshot of their controls and output, with a
   note to run the notebook to move them); circuitsvis figures already carry their JavaScript;
4. writes a MkDocs site (Material theme, mkdocs-jupyter): the README's opening sections as the
   home page, one page per chapter, the guides in docs/, search, the exercise and solution
   notebooks to download, and "Open in Colab" badges. Every asset is local: fonts, MathJax,
   plotly.js, the badge image; no page asks anything of the network.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import re
import shutil
import sys
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
OUT = ROOT / "build" / "website"
SRC = ROOT / "build" / "website-src"  # mkdocs.yml, and docs/ with every page and file of the site
DOCS = SRC / "docs"
# Outside the checkout, so a fresh clone of the same commit (CI's) finds what this one executed.
CACHE = Path(os.environ.get("DIGSITE_WEBSITE_CACHE", Path.home() / ".cache" / "digsite" / "website"))
# Bump when the way notebooks are executed changes, so every cached notebook is redone.
EXECUTION_VERSION = "2"
#: What the site shows in place of a cell's output when the cell tries GPT-2 (calls `online()`).
GPT2_NOTE = (
    "This cell loads a model from the Hugging Face hub (GPT-2, Pythia or Gemma), which needs the network; "
    "the site is built offline. Run the notebook to see it.\n"
)
BADGE_URL = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE_URL = "https://mybinder.org/badge_logo.svg"
#: Badge images the README and notebooks take from other sites, and the site's own copies of them.
LOCAL_BADGES = {BADGE_URL: "assets/colab-badge.svg", BINDER_BADGE_URL: "assets/binder-badge.svg"}
HEADING = re.compile(r"^#\s+(.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Chapter:
    """One chapter: its file stem ("01_hooks"), title, and its two notebooks."""

    stem: str
    title: str
    solution: Path
    exercise: Path


def repository() -> str:
    """The course's GitHub "owner/name", from pyproject.toml (the one place that names it)."""
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    return urls["Repository"].removeprefix("https://github.com/").rstrip("/")


def find_chapters() -> list[Chapter]:
    """Every chapter with a solution notebook, in order; its title is the notebook's first heading."""
    chapters = []
    for solution in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(solution.read_text())
        title = solution.stem
        for cell in nb["cells"]:
            match = HEADING.search("".join(cell["source"])) if cell["cell_type"] == "markdown" else None
            if match:
                title = match.group(1).strip()
                break
        exercise = ROOT / "chapters" / solution.name
        if not exercise.exists():
            raise FileNotFoundError(f"{solution} has no exercise twin {exercise}: run `python course/build.py`.")
        chapters.append(Chapter(solution.stem, title, solution, exercise))
    if not chapters:
        raise FileNotFoundError(f"No solution notebooks found in {ROOT / 'solutions'}.")
    return chapters


def package_fingerprint() -> str:
    """A hash of every file of the `digsite` package: outputs change when the package does."""
    digest = hashlib.sha256()
    package = ROOT / "utils" / "digsite"
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(notebook: Path, fingerprint: str) -> str:
    """What an executed notebook depends on: its own bytes, the package, and how it was run."""
    digest = hashlib.sha256(notebook.read_bytes())
    digest.update(fingerprint.encode())
    digest.update(EXECUTION_VERSION.encode())
    return digest.hexdigest()[:20]


def execute(notebook: Path, target: Path, timeout: int) -> float:
    """Run a notebook top to bottom offline, widgets' state kept; write it to `target`. Returns seconds.

    Fails (naming the cell) on the first error: a solution notebook must run.
    """
    import nbformat
    from nbclient import NotebookClient

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # One thread per kernel: notebooks run side by side (--jobs), and two kernels of two threads
    # each on a 2-core machine fight over the cores (chapter 3's timings then mean nothing).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    nb = nbformat.read(notebook, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=timeout,
        store_widget_state=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent)}},
    ).execute()
    seconds = time.perf_counter() - start
    save_executed(nb, target)
    return seconds


def tries_gpt2(cell: dict) -> bool:
    """Whether a code cell is a "Try it on GPT-2" cell: by the course's rule, it calls `online()`."""
    return cell["cell_type"] == "code" and "online()" in "".join(cell["source"])


def save_executed(nb, target: Path) -> None:
    """Write an executed notebook to the cache, each GPT-2 cell's output replaced by `GPT2_NOTE`."""
    import nbformat

    for cell in nb.cells:
        if tries_gpt2(cell):
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=GPT2_NOTE)]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(target)  # atomic: an interrupted build never leaves a half-written cache entry


def cache_entry(notebook: Path, cache: Path, fingerprint: str) -> Path:
    """Where the executed version of `notebook` (with this package) is cached."""
    return cache / f"{notebook.stem}-{cache_key(notebook, fingerprint)}.ipynb"


class Recorder:
    """The executed notebook that `execute` would write, built from the kernel messages of another run.

    The test suite's nbval plugin runs each solution notebook cell by cell in its own kernel;
    the root conftest.py passes every message of each cell's execution to `message` (nbclient's
    own `process_message` turns them into outputs and widget state, as in `execute`) and calls
    `save` when every cell has passed. The cache key is taken when the recorder is made, from
    the notebook's bytes and the package; `save` writes nothing if either changed since, if a
    cell ran other code than the notebook's (nbval read the file earlier), failed, was skipped
    or did not run, so a cached notebook is always what this commit's notebook printed.
    """

    def __init__(self, notebook: Path, kernel_client=None, cache: Path = CACHE):
        import nbformat
        from nbclient import NotebookClient

        self.notebook = notebook
        self.source = notebook.read_bytes()
        self.fingerprint = package_fingerprint()
        self.target = cache_entry(notebook, cache, self.fingerprint)
        self.nb = nbformat.reads(self.source.decode(), as_version=4)
        self.client = NotebookClient(self.nb, store_widget_state=True, record_timing=False)
        self.client.kc = kernel_client  # Output widgets answer the kernel, as a front end does
        self.code_cells = [i for i, cell in enumerate(self.nb.cells) if cell.cell_type == "code"]
        self.passed: set[int] = set()
        self.failed = False
        self.current = -1

    def message(self, msg: dict, code_cell: int) -> None:
        """One kernel message of the execution of the `code_cell`-th code cell (0-based)."""
        from nbclient.exceptions import CellExecutionComplete

        index = self.code_cells[code_cell]
        if code_cell != self.current:  # a new cell starts, as in nbclient's `async_execute_cell`
            self.current = code_cell
            self.client.clear_before_next_output = False
            self.nb.cells[index].outputs = []
        try:
            self.client.process_message(msg, self.nb.cells[index], index)
        except CellExecutionComplete:
            pass

    def finished(self, code_cell: int, source: str, passed: bool) -> None:
        """The `code_cell`-th code cell's test is over; `source` is what the kernel was given to run."""
        if passed and source == self.nb.cells[self.code_cells[code_cell]].source:
            self.passed.add(code_cell)
        else:
            self.failed = True

    def save(self) -> Path | None:
        """Write the executed notebook to the cache if every cell ran and passed and nothing changed since."""
        complete = not self.failed and self.passed == set(range(len(self.code_cells)))
        if not complete or self.notebook.read_bytes() != self.source or package_fingerprint() != self.fingerprint:
            return None
        for number, index in enumerate(self.code_cells):
            self.nb.cells[index].execution_count = number + 1
        self.client.set_widgets_metadata()
        save_executed(self.nb, self.target)
        for stale in self.target.parent.glob(f"{self.notebook.stem}-*.ipynb"):
            if stale != self.target:
                stale.unlink(missing_ok=True)
        return self.target


def executed_notebooks(chapters: list[Chapter], cache: Path, jobs: int, timeout: int) -> dict[str, tuple[Path, str]]:
    """Each chapter's executed notebook, from the cache or freshly run: stem -> (path, "cached" | "N s")."""
    fingerprint = package_fingerprint()
    result: dict[str, tuple[Path, str]] = {}
    todo = []
    for chapter in chapters:
        target = cache_entry(chapter.solution, cache, fingerprint)
        if target.exists():
            result[chapter.stem] = (target, "cached")
        else:
            todo.append((chapter, target))
    if todo:
        print(f"Executing {len(todo)} notebook(s), {jobs} at a time ...", flush=True)
        with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {
                chapter.stem: (pool.submit(execute, chapter.solution, target, timeout), target)
                for chapter, target in todo
            }
            for stem, (future, target) in futures.items():
                seconds = future.result()
                print(f"  {stem}: {seconds:.0f} s", flush=True)
                result[stem] = (target, f"{seconds:.0f} s")
    # Drop cache entries no chapter uses any more, so the cache does not grow without bound.
    keep = {path for path, _ in result.values()}
    for stale in cache.glob("*.ipynb"):
        if stale not in keep:
            stale.unlink()
    return result


# --- static versions of what needs a live kernel ---------------------------------------------


def plotly_html(figure: dict) -> str:
    """A plotly figure as a placeholder div plus its JSON; website/assets/figures.js draws it."""
    data = json.dumps(figure, separators=(",", ":"))
    div_id = "digsite-plotly-" + hashlib.sha1(data.encode()).hexdigest()[:12]
    safe = data.replace("</", "<\\/")  # a "</script>" inside a string must not close the tag
    return (
        f'<div class="digsite-plotly" id="{div_id}"></div>'
        f'<script type="application/json" data-plotly-for="{div_id}">{safe}</script>'
    )


def output_html(output: dict) -> str:
    """One saved output (of a cell or of an Output widget) as HTML, for a widget's snapshot."""
    data = output.get("data", {})
    if "application/vnd.plotly.v1+json" in data:
        return plotly_html(data["application/vnd.plotly.v1+json"])
    if "text/html" in data:
        text = data["text/html"]
        return "".join(text) if isinstance(text, list) else text
    if "image/png" in data:
        return f'<img src="data:image/png;base64,{data["image/png"]}" alt="figure">'
    text = output.get("text") or data.get("text/plain", "")
    text = "".join(text) if isinstance(text, list) else text
    return f"<pre>{html.escape(text)}</pre>" if text else ""


def widget_html(model_id: str, state: dict, depth: int = 0) -> str:
    """A static snapshot of an ipywidget (and its children) from the notebook's saved widget state."""
    model = state.get(model_id)
    if model is None or depth > 30:
        return ""
    name, s = model["model_name"], model["state"]
    label = html.escape(str(s.get("description", "")))
    children = [widget_html(c.removeprefix("IPY_MODEL_"), state, depth + 1) for c in s.get("children", [])]
    if name in ("HBoxModel", "GridBoxModel"):
        return f'<div class="digsite-widget-row">{"".join(children)}</div>'
    if name.endswith("BoxModel") or name in ("AccordionModel", "TabModel", "StackModel"):
        return f'<div class="digsite-widget-column">{"".join(children)}</div>'
    if name.endswith("SliderModel"):
        return (
            f'<label class="digsite-widget-control">{label} <input type="range" disabled '
            f'min="{s.get("min", 0)}" max="{s.get("max", 100)}" value="{s.get("value", 0)}"> '
            f"{html.escape(str(s.get('value', '')))}</label>"
        )
    if name in ("TextModel", "TextareaModel", "IntTextModel", "FloatTextModel"):
        return (
            f'<label class="digsite-widget-control">{label} <input type="text" disabled '
            f'value="{html.escape(str(s.get("value", "")))}"></label>'
        )
    if "_options_labels" in s:
        chosen = s.get("index")
        options = "".join(
            f'<span class="digsite-widget-option{" chosen" if i == chosen else ""}">{html.escape(o)}</span>'
            for i, o in enumerate(s["_options_labels"])
        )
        return f'<span class="digsite-widget-control">{label} {options}</span>'
    if name in ("FloatProgressModel", "IntProgressModel"):  # e.g. a tqdm bar
        return f'<progress max="{s.get("max", 100)}" value="{s.get("value", 0)}"></progress>'
    if name == "CheckboxModel":
        checked = " checked" if s.get("value") else ""
        return f'<label class="digsite-widget-control"><input type="checkbox" disabled{checked}> {label}</label>'
    if name == "ButtonModel":
        return f'<button class="digsite-widget-control" disabled>{html.escape(str(s.get("description", "")))}</button>'
    if name == "LabelModel":
        return f'<div class="digsite-widget-label">{html.escape(str(s.get("value", "")))}</div>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<div>{s.get('value', '')}</div>"
    if name == "OutputModel":
        return "".join(output_html(o) for o in s.get("outputs", []))
    return ""


def widget_snapshot(model_id: str, state: dict) -> str:
    """A widget's snapshot; one with controls is framed and labelled, so nobody drags a dead slider."""
    body = widget_html(model_id, state)
    if "disabled" not in body:  # no controls (a progress bar, a label): just what it shows
        return f'<div class="digsite-widget-static-plain">{body}</div>'
    return (
        '<div class="digsite-widget-static"><p class="digsite-widget-note">A snapshot of an interactive '
        f"explorer. Download the notebook or open it in Colab to move its controls.</p>{body}</div>"
    )


def static_outputs(nb: dict) -> None:
    """Replace, in place, every output that needs a live kernel by its static HTML version."""
    state = (
        nb.get("metadata", {}).get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    )
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                model_id = data["application/vnd.jupyter.widget-view+json"]["model_id"]
                output["data"] = {"text/html": widget_snapshot(model_id, state)}
            elif "application/vnd.plotly.v1+json" in data:
                output["data"] = {"text/html": plotly_html(data["application/vnd.plotly.v1+json"])}
    # Without the state, mkdocs-jupyter adds no widget manager (which it would fetch from a CDN).
    nb.get("metadata", {}).pop("widgets", None)


def page_notebook(executed: Path, chapter: Chapter, repo: str) -> dict:
    """The notebook as the site shows it: static outputs, a local badge, and download links."""
    nb = json.loads(executed.read_text())
    static_outputs(nb)
    colab = f"https://colab.research.google.com/github/{repo}/blob/main"
    links = (
        f"[![Open the exercises in Colab](assets/colab-badge.svg)]({colab}/chapters/{chapter.stem}.ipynb) "
        f"**Get this chapter:** [exercise notebook](downloads/{chapter.stem}.ipynb) (download, open in "
        f"JupyterLab) · [solution notebook](downloads/solutions/{chapter.stem}.ipynb) · "
        f"[solutions in Colab]({colab}/solutions/{chapter.stem}.ipynb)\n\n"
        "*This page is the solution notebook, run offline on a CPU, with its outputs.*"
    )
    for cell in nb["cells"]:
        # The notebook's own badge (an image from Colab's site, for the solutions) becomes the links.
        if cell["cell_type"] == "markdown" and BADGE_URL in "".join(cell["source"]):
            cell["source"] = links
            break
    else:
        nb["cells"].insert(0, {"cell_type": "markdown", "metadata": {}, "source": links})
    return nb


# --- the MkDocs project ---------------------------------------------------------------------


def home_page(chapters: list[Chapter], repo: str) -> str:
    """The README up to its test instructions, with links into the site (or to the repository)."""
    readme = (ROOT / "README.md").read_text()
    cut = readme.find("\n## Run the tests")
    text = readme[: cut if cut >= 0 else len(readme)]
    stems = {c.stem for c in chapters}

    def link(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"^[a-z]+:|^#", target):
            return match.group(0)
        path = Path(target)
        if path.parent.name in ("chapters", "solutions") and path.stem in stems:
            return f"]({path.stem}.ipynb)"
        if path.parent.name == "docs" and path.suffix == ".md":
            return f"]({path.name})"
        return f"](https://github.com/{repo}/blob/main/{target})"

    text = re.sub(r"\]\(((?!\s)([^)\s]+))\)", link, text)
    for remote, local in LOCAL_BADGES.items():  # the badges' images from the site itself: no request leaves
        text = text.replace(f"]({remote})", f"]({local})")
    return text


def mkdocs_config(chapters: list[Chapter], guides: list[str], repo: str) -> dict:
    """The MkDocs configuration: Material theme with no external fonts, mkdocs-jupyter, search."""
    return {
        "site_name": "Dig Site",
        "site_description": "A hands-on course in mechanistic interpretability",
        "docs_dir": str(DOCS),
        "site_dir": str(OUT),
        "use_directory_urls": False,  # pages are plain files: the site also opens from a disk
        "theme": {
            "name": "material",
            "font": False,  # the system's fonts: Material would otherwise load them from Google
            "features": ["navigation.sections", "navigation.top", "search.highlight", "toc.follow"],
            "palette": {"primary": "brown", "accent": "amber"},
        },
        "extra": {
            "social": [{"icon": "fontawesome/brands/github", "link": f"https://github.com/{repo}"}],
            "generator": False,
        },
        "extra_css": ["assets/site.css"],
        "extra_javascript": ["assets/plotly.min.js", "assets/figures.js"],
        "markdown_extensions": ["tables", "admonition", "attr_list", "md_in_html", "toc"],
        "plugins": [
            "search",
            {
                "mkdocs-jupyter": {
                    "include": ["*.ipynb"],
                    "ignore": ["downloads/*", "downloads/*/*"],
                    "execute": False,  # executed (and cached) by this script, outputs made static first
                    "include_requirejs": False,
                    "custom_mathjax_url": "assets/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe,local/digsite",
                    "cache_dir": str(ROOT / "build" / "website-render-cache"),
                    "highlight_extra_classes": "",
                }
            },
        ],
        "nav": [
            {"Home": "index.md"},
            {"Chapters": [{c.title: f"{c.stem}.ipynb"} for c in chapters]},
            *([{"Guides": guides}] if guides else []),
        ],
    }


def write_sources(chapters: list[Chapter], executed: dict[str, tuple[Path, str]], repo: str) -> None:
    """Lay out the MkDocs source folder: pages, downloads, local assets, mkdocs.yml."""
    import jupyter_server_mathjax
    import plotly

    if SRC.exists():
        shutil.rmtree(SRC)
    (DOCS / "downloads" / "solutions").mkdir(parents=True)
    (DOCS / "index.md").write_text(home_page(chapters, repo))
    for chapter in chapters:
        nb = page_notebook(executed[chapter.stem][0], chapter, repo)
        (DOCS / f"{chapter.stem}.ipynb").write_text(json.dumps(nb))
        shutil.copy(chapter.exercise, DOCS / "downloads" / f"{chapter.stem}.ipynb")
        shutil.copy(chapter.solution, DOCS / "downloads" / "solutions" / f"{chapter.stem}.ipynb")
    guides = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        shutil.copy(doc, DOCS / doc.name)
        guides.append(doc.name)
    assets = DOCS / "assets"
    shutil.copytree(HERE / "assets", assets)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", assets / "plotly.min.js")
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", assets / "mathjax")
    (assets / "mathjax" / "config" / "local").mkdir(parents=True, exist_ok=True)
    shutil.move(assets / "mathjax-local.js", assets / "mathjax" / "config" / "local" / "digsite.js")
    import yaml

    (SRC / "mkdocs.yml").write_text(yaml.safe_dump(mkdocs_config(chapters, guides, repo), sort_keys=False))


def build(jobs: int = 1, timeout: int = 600) -> dict:
    """Build the whole site into build/website/; returns what it did and how long each step took."""
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config

    start = time.perf_counter()
    chapters = find_chapters()
    repo = repository()
    executed = executed_notebooks(chapters, CACHE, jobs, timeout)
    t_exec = time.perf_counter() - start
    write_sources(chapters, executed, repo)
    mkdocs_build(load_config(str(SRC / "mkdocs.yml")))
    total = time.perf_counter() - start
    report = {
        "chapters": {c.stem: executed[c.stem][1] for c in chapters},
        "execute_s": round(t_exec, 1),
        "total_s": round(total, 1),
        "site": str(OUT),
    }
    (OUT / "build.json").write_text(json.dumps(report, indent=1))
    return report


def serve(port: int) -> None:
    """Serve build/website/ on 127.0.0.1 until Ctrl-C."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(OUT))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"Serving the course at http://127.0.0.1:{port}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["build", "serve"], default="build")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at a time (default 1)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--port", type=int, default=8000, help="port for `serve` (127.0.0.1 only)")
    args = parser.parse_args(argv)
    report = build(jobs=args.jobs, timeout=args.timeout)
    print(f"Built {report['site']} in {report['total_s']} s (executing: {report['execute_s']} s): {report['chapters']}")
    if args.command == "serve":
        serve(args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
