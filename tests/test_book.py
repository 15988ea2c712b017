"""Checks of the book as a whole: table of contents, committed notebooks, Colab set-up, build.

(a) every chapter listed in ``_toc.yml`` exists and its committed outputs come from one clean
    full-mode run (kernel ``python3``, execution counts 1..N, no errors, no quick-mode output);
(b) the repository URL is written once, in ``_config.yml``; every notebook's setup cell clones
    that repository at the branch its Colab link opens and installs it with the extras that
    cover every import of the chapter and of ``hsam_core``; it installs nothing on Colab outside
    ``if IN_COLAB:``, never installs ``torch`` (Colab keeps the CUDA build it ships), and no
    chapter reads or writes a path relative to the working directory (a Colab runtime's is
    ``/content``);
(c) each chapter's Colab link is ``<colab>/github/<owner>/<repo>/blob/main/book/<name>.ipynb``,
    both as computed from the config and as written in built HTML;
(d) the book builds with ``-W -n --keep-going`` (execution is off, so this takes seconds), and
    headless Chromium renders every page: images decode, math is typeset by the MathJax that
    ships with the book (there is no CDN here), internal links resolve.

The standard library, PyYAML (a dependency of jupyter-book), pytest and, for reading the table
of contents, ``hsam_core.reproduce.toc_entries`` are used.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
import tomllib
import yaml

from hsam_core.reproduce import toc_entries

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILE = ROOT / "_config.yml"
TOC_FILE = ROOT / "_toc.yml"
CHROMIUM = Path("/usr/bin/chromium")
COLAB = "https://colab.research.google.com"
CHAPTER_NAME = re.compile(r"^\d\d_")  # book/NN_name: a chapter, which must be a notebook

# ---------------------------------------------------------------------------------------------
# configuration and table of contents


def load_config() -> dict:
    return yaml.safe_load(CONFIG_FILE.read_text(encoding="utf-8"))


def toc_pages() -> list[str]:
    return toc_entries(yaml.safe_load(TOC_FILE.read_text(encoding="utf-8")))


def page_source(entry: str, root: Path = ROOT) -> Path | None:
    """The .ipynb or .md file of a toc entry (notebooks win, as in Jupyter Book)."""
    for ext in (".ipynb", ".md"):
        path = root / f"{entry}{ext}"
        if path.is_file():
            return path
    return None


def chapter_notebooks() -> list[Path]:
    """The notebooks listed in ``_toc.yml``, in reading order."""
    paths = (page_source(entry) for entry in toc_pages())
    return [p for p in paths if p is not None and p.suffix == ".ipynb"]


def repository_url() -> str:
    return load_config()["repository"]["url"].rstrip("/")


def repository_branch() -> str:
    """The branch the Colab links open, and the setup cells clone."""
    return load_config()["repository"]["branch"]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def expected_colab_url(notebook_name: str) -> str:
    owner, repo = urllib.parse.urlparse(repository_url()).path.strip("/").split("/")
    return f"{COLAB}/github/{owner}/{repo}/blob/main/book/{notebook_name}.ipynb"


def read_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def cell_source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


NOTEBOOKS = chapter_notebooks()
NB_IDS = [p.stem for p in NOTEBOOKS]


def test_config_settings():
    """The settings the book, its tests and its Colab links rely on (DESIGN.md section 3.1)."""
    cfg = load_config()
    assert cfg["only_build_toc_files"] is True
    assert cfg["execute"]["execute_notebooks"] == "off", "committed outputs are the source"
    repo = cfg["repository"]
    assert repo["branch"] == "main"
    assert repo.get("path_to_book", "") == "", "_config.yml sits at the repository root"
    assert cfg["launch_buttons"]["colab_url"] == COLAB
    assert not cfg["launch_buttons"].get("binderhub_url")
    assert cfg["html"]["use_repository_button"] is True
    for bib in cfg["bibtex_bibfiles"]:
        assert (ROOT / bib).is_file(), bib
    extensions = set(cfg["parse"]["myst_enable_extensions"])
    assert {"amsmath", "dollarmath", "colon_fence", "deflist", "substitution"} <= extensions
    sphinx = cfg["sphinx"]
    # MathJax ships with the book (no CDN): see the comment in _config.yml.
    assert "sphinx-mathjax-offline" in sphinx["extra_extensions"]
    assert not sphinx["config"]["mathjax_path"].startswith(("http:", "https:", "//"))
    for pattern in ("_build", ".venv", "checkpoints", "tests", "README.md"):
        assert pattern in cfg["exclude_patterns"], pattern


def test_toc_entries_exist():
    """With only_build_toc_files a missing entry breaks the build; chapters are notebooks."""
    entries = toc_pages()
    assert entries[0] == "book/intro"
    assert "book/bibliography" in entries
    assert len(entries) == len(set(entries)), "a page is listed twice"
    for entry in entries:
        source = page_source(entry)
        assert source is not None, f"{entry} is in _toc.yml but neither .ipynb nor .md exists"
        both = all((ROOT / f"{entry}{ext}").is_file() for ext in (".ipynb", ".md"))
        assert not both, f"{entry}: both .ipynb and .md exist; keep one"
        if CHAPTER_NAME.match(Path(entry).name):
            assert source.suffix == ".ipynb", f"chapter {entry} must be a notebook"


def test_every_notebook_is_in_the_toc():
    """nbval tests every notebook under book/; the book must show each of them."""
    listed = {p.resolve() for p in NOTEBOOKS}
    for path in sorted((ROOT / "book").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts or "_build" in path.parts:
            continue
        assert path.resolve() in listed, f"{path.relative_to(ROOT)} is not listed in _toc.yml"


# ---------------------------------------------------------------------------------------------
# (a) committed outputs come from one clean full-mode run


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_notebook_is_one_clean_full_run(path: Path):
    nb = read_notebook(path)
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", (
        "kernelspec.name must be python3 (nbval and Jupyter Book look the kernel up by name)"
    )
    cells = code_cells(nb)
    assert cells, "a chapter without code"
    counts = [c.get("execution_count") for c in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"execution counts {counts} are not 1..{len(cells)}: re-run the notebook top to bottom "
        "(scripts/refresh_outputs.sh)"
    )
    quick = re.compile(r"quick mode:\s*True", re.IGNORECASE)
    for number, cell in enumerate(cells, start=1):
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"cell [{number}] has an error output"
            texts = [out.get("text", "")]
            texts += [v for k, v in out.get("data", {}).items() if k.startswith("text/")]
            text = "".join("".join(t) if isinstance(t, list) else t for t in texts)
            assert not quick.search(text), (
                f"cell [{number}] shows a quick-mode run; the book shows full-mode outputs"
            )


# ---------------------------------------------------------------------------------------------
# (b) one repository URL, Colab-only installs, never torch

_MAGIC_LINE = re.compile(r"^(\s*)([!%].*)$")
_PIP_INSTALL_TEXT = re.compile(r"\bpip3?\s+install\b([^\n;&|]*)")
_VCS_OR_URL = re.compile(r"^(git\+|hg\+|svn\+|bzr\+)?[a-z]+://")


@dataclass
class PipInstall:
    """One ``pip install`` found in a cell: its line and the arguments after ``install``."""

    line: int
    args: list[str] = field(default_factory=list)


def _split_args(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:  # unbalanced quotes inside a longer Python string
        return text.split()


def python_source(source: str) -> str:
    """A cell as plain Python: ``!cmd`` / ``%magic`` lines become ``_magic('...')`` calls,
    kept on their line and at their indentation, so ``if IN_COLAB:`` still encloses them."""
    out = []
    for line in source.splitlines():
        match = _MAGIC_LINE.match(line)
        out.append(f"{match.group(1)}_magic({match.group(2)!r})" if match else line)
    return "\n".join(out)


def pip_installs(source: str) -> tuple[list[PipInstall], list[tuple[int, int]]]:
    """Every ``pip install`` of a cell, and the line ranges of its ``if IN_COLAB:`` bodies.

    Finds the shell forms (``!pip install x``, ``%pip install x``, ``"pip install x"`` in any
    string) and the list form (``[sys.executable, "-m", "pip", "install", "x"]``).
    """
    if source.lstrip().startswith("%%"):  # a cell magic: the whole cell is shell text
        found = [
            PipInstall(n, _split_args(m.group(1)))
            for n, line in enumerate(source.splitlines(), start=1)
            for m in _PIP_INSTALL_TEXT.finditer(line)
        ]
        return found, []
    tree = ast.parse(python_source(source))
    found, guarded = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name):
            if node.test.id == "IN_COLAB":
                guarded.append((node.body[0].lineno, node.body[-1].end_lineno))
        elif isinstance(node, ast.List | ast.Tuple):
            words = [
                e.value if isinstance(e, ast.Constant) and isinstance(e.value, str) else None
                for e in node.elts
            ]
            for i in range(len(words) - 1):
                if words[i] in ("pip", "pip3") and words[i + 1] == "install":
                    args = [w for w in words[i + 2 :] if w is not None]
                    found.append(PipInstall(node.lineno, args))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for match in _PIP_INSTALL_TEXT.finditer(node.value):
                found.append(PipInstall(node.lineno, _split_args(match.group(1))))
    return found, guarded


def requirement_name(arg: str) -> str | None:
    """The distribution a pip argument names (``torch>=2`` → ``torch``), None for options
    and plain URLs."""
    arg = arg.strip()
    if not arg or arg.startswith("-") or _VCS_OR_URL.match(arg):
        return None
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", arg)
    return match.group(0).lower().replace("_", "-") if match else None


def install_problems(source: str) -> list[str]:
    """What is wrong with the pip installs of one cell (empty when nothing is)."""
    problems = []
    installs, guarded = pip_installs(source)
    for inst in installs:
        where = f"line {inst.line}"
        if not any(lo <= inst.line <= hi for lo, hi in guarded):
            problems.append(f"{where}: pip install outside `if IN_COLAB:`")
        for arg in inst.args:
            if arg in ("-r", "--requirement") or arg.startswith(("-r", "--requirement=")):
                problems.append(f"{where}: installs a requirements file (it would pin torch)")
            if requirement_name(arg) == "torch":
                problems.append(f"{where}: installs torch ({arg!r}); Colab ships its own")
    return problems


@dataclass
class Checkout:
    """What a setup cell fetches on Colab: the repository it clones, at which branch, and the
    extras of its editable install of that clone (``"-e", BOOK + "[a,b]"``)."""

    url: str | None
    branch: str | None
    extras: set[str]


def colab_checkout(source: str) -> Checkout:
    url = re.search(r"[\"'](https://github\.com/[\w.-]+/[\w.-]+)[\"']", source)
    branch = re.search(r"git clone\b[^\n\"']*--branch[= ]([\w./-]+)", source)
    extras = re.search(r"[\"']-e[\"'],\s*\w+\s*\+\s*[\"']\[([\w,-]+)\][\"']", source)
    return Checkout(
        url.group(1) if url else None,
        branch.group(1) if branch else None,
        set(extras.group(1).split(",")) if extras else set(),
    )


def imported_modules(source: str) -> set[str]:
    """The top-level names of every module a cell or a file imports, at any depth."""
    names = set()
    for node in ast.walk(ast.parse(python_source(source))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def provided_modules(extras: set[str]) -> set[str]:
    """The modules that ``pip install -e <clone>[extras]`` provides: those of the package's
    dependencies and of the extras named, as this environment's installed distributions map
    them (``importlib.metadata.packages_distributions``)."""
    import importlib.metadata

    project = pyproject()["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    names = {requirement_name(w) for w in wanted}
    by_module = importlib.metadata.packages_distributions()
    return {
        module
        for module, dists in by_module.items()
        if {d.lower().replace("_", "-") for d in dists} & names
    }


# What no chapter reaches: Ray (hsam_core's extra for sweeps from the command line) and the
# modules of the command line itself (re-executing chapters needs the book's tooling).
NOT_FOR_CHAPTERS = {"ray"}
COMMAND_LINE = {"__main__.py", "reproduce.py"}


def third_party_imports(path: Path) -> set[str]:
    """What a chapter imports, and what ``hsam_core`` imports anywhere in its code, outside the
    standard library and ``hsam_core`` itself."""
    names = set()
    for cell in code_cells(read_notebook(path)):
        names |= imported_modules(cell_source(cell))
    for module in (ROOT / "hsam_core").rglob("*.py"):
        if module.name in COMMAND_LINE:
            continue
        names |= imported_modules(module.read_text(encoding="utf-8")) - NOT_FOR_CHAPTERS
    return {n for n in names if n not in sys.stdlib_module_names and n != "hsam_core"}


_PATH_CALLS = {"Path", "open", "read_csv", "to_csv", "read_text", "write_text", "savefig", "load"}


def relative_paths(source: str) -> list[str]:
    """String paths relative to the working directory that a cell hands to a file call."""
    found = []
    for node in ast.walk(ast.parse(python_source(source))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        first = node.args[0]
        if name in _PATH_CALLS and isinstance(first, ast.Constant):
            if isinstance(first.value, str) and not first.value.startswith(("/", "http")):
                found.append(f"line {node.lineno}: {name}({first.value!r})")
    return found


def test_repository_url_is_written_once():
    url = repository_url()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    assert CONFIG_FILE.read_text(encoding="utf-8").count(url) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_setup_cell_clones_the_book_and_installs_what_the_chapter_imports(path: Path):
    """On Colab the setup cell clones the repository at the branch the Colab link opens (so
    the code and the results store are those of the page), installs that clone with extras
    that provide every module the chapter and ``hsam_core`` import, and nothing else."""
    cells = code_cells(read_notebook(path))
    setup = cell_source(cells[0])
    assert re.search(r"IN_COLAB\s*=\s*[\"']google\.colab[\"']\s+in\s+sys\.modules", setup), (
        'the first code cell must set IN_COLAB = "google.colab" in sys.modules'
    )
    checkout = colab_checkout(setup)
    assert (checkout.url, checkout.branch) == (repository_url(), repository_branch()), (
        f"the setup cell must `git clone --branch={repository_branch()} {repository_url()}`"
    )
    known = set(pyproject()["project"]["optional-dependencies"])
    assert checkout.extras and checkout.extras <= known, (
        f'the setup cell must install the clone with `"-e", BOOK + "[extras]"`, extras of {known}'
    )
    missing = third_party_imports(path) - provided_modules(checkout.extras)
    assert not missing, f"imported but not installed on Colab: {sorted(missing)}"
    problems = []
    for number, cell in enumerate(cells, start=1):
        problems += [f"cell [{number}] {p}" for p in install_problems(cell_source(cell))]
        problems += [f"cell [{number}] {p}" for p in relative_paths(cell_source(cell))]
    assert not problems, "\n".join(problems)


def test_the_book_finds_its_results_from_any_working_directory(tmp_path: Path):
    """Colab runs a chapter in /content, not in book/: the store and the side tables are found
    from the package (``settings.BOOK_RESULTS``), whatever the working directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSAM_")}
    env["PYTHONPATH"] = str(ROOT)
    script = (
        "from hsam_core import report, settings, studies\n"
        "assert settings.get().store == settings.BOOK_STORE, settings.get().store\n"
        "print(len(report.results(studies.get('pendulum_settled'))))\n"
        "print(sorted(p.name for p in settings.BOOK_RESULTS.glob('*.csv')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    rows, tables = done.stdout.splitlines()
    assert int(rows) == 21 * 5
    assert "identifiability.csv" in tables


def test_install_checker_catches_what_it_should():
    """The checkers themselves, on cells a chapter could contain."""
    good = (
        "import sys, subprocess\n"
        'IN_COLAB = "google.colab" in sys.modules\n'
        "if IN_COLAB:\n"
        '    REPO, BOOK = "https://github.com/o/r", "/content/r"\n'
        '    subprocess.run(f"git clone -q --branch=main {REPO} {BOOK}".split(), check=True)\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", BOOK + "[a,b]"])\n'
        "    %pip install -q torchdiffeq\n"
        "import torch\n"
    )
    assert install_problems(good) == []
    assert len(pip_installs(good)[0]) == 2
    assert colab_checkout(good) == Checkout("https://github.com/o/r", "main", {"a", "b"})
    assert colab_checkout("import torch") == Checkout(None, None, set())
    assert imported_modules(
        "import a.b\nfrom c.d import e\nfrom . import f\ndef g():\n import h"
    ) == {
        "a",
        "c",
        "h",
    }
    bad_cells = {
        "!pip install torch torchdiffeq": "outside",
        "if IN_COLAB:\n    !pip install torch==2.1 torchdiffeq": "installs torch",
        'if IN_COLAB:\n    os.system("pip install -q torch[cpu]>=2")': "installs torch",
        'if IN_COLAB:\n    subprocess.run(["pip", "install", "torch"])': "installs torch",
        "if IN_COLAB:\n    %pip install -r requirements.txt": "requirements file",
        "if IN_COLAB:\n    pass\nelse:\n    %pip install torchdiffeq": "outside",
        "%%bash\npip install torchdiffeq": "outside",
    }
    for cell, expected in bad_cells.items():
        problems = install_problems(cell)
        assert any(expected in p for p in problems), (cell, problems)
    # torchdiffeq is not torch, and importing torch is not installing it
    fine = "if IN_COLAB:\n    !pip install torchdiffeq\nimport torch"
    assert install_problems(fine) == []
    # paths relative to the working directory, which is /content on Colab
    cwd = 'RESULTS = pathlib.Path("results")\npd.read_csv("book/x.csv")\nopen("/abs/x")\n'
    assert len(relative_paths(cwd)) == 2
    assert (
        relative_paths("RESULTS = hc.settings.BOOK_RESULTS\npd.read_csv(RESULTS / 'x.csv')") == []
    )


# ---------------------------------------------------------------------------------------------
# (c) Colab links


def colab_links(html: str) -> set[str]:
    return set(re.findall(r'href="(https://colab\.research\.google\.com/[^"]*)"', html))


def test_colab_url_follows_from_the_config():
    """sphinx-book-theme builds {colab_url}/github/{org}/{repo}/blob/{branch}/{path_to_book}/
    {page}.ipynb; with _config.yml at the root the page path already starts with book/."""
    cfg = load_config()
    owner_repo = urllib.parse.urlparse(cfg["repository"]["url"]).path.strip("/")
    prefix = cfg["repository"].get("path_to_book", "").strip("/")
    entries = ["book/NN_example"] + [str(p.relative_to(ROOT).with_suffix("")) for p in NOTEBOOKS]
    for entry in entries:
        page = f"{prefix}/{entry}" if prefix else entry
        themed = (
            f"{cfg['launch_buttons']['colab_url']}/github/{owner_repo}/blob/"
            f"{cfg['repository']['branch']}/{page}.ipynb"
        )
        assert themed == expected_colab_url(Path(entry).name)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_launch_link_in_repository_build(path: Path):
    page = ROOT / "_build" / "html" / "book" / f"{path.stem}.html"
    if not page.is_file():
        pytest.skip("no _build/html from `jupyter-book build .` in the repository")
    assert colab_links(page.read_text(encoding="utf-8")) == {expected_colab_url(path.stem)}


# ---------------------------------------------------------------------------------------------
# (d) the build, and the rendered pages in headless Chromium


@dataclass
class Build:
    root: Path
    html: Path
    returncode: int
    seconds: float
    log: str
    pages: list[str]


def copy_book(dest: Path) -> None:
    """The files a build reads: the two configs and book/ (no build output, no caches)."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "book",
        dest / "book",
        ignore=shutil.ignore_patterns(
            "_build", ".ipynb_checkpoints", "__pycache__", "_data_cache", ".jupyter_cache"
        ),
    )


def jupyter_book_command() -> list[str]:
    script = Path(sys.executable).with_name("jupyter-book")
    if script.is_file():
        return [str(script)]
    found = shutil.which("jupyter-book")
    if found is None:
        pytest.skip("jupyter-book is not installed")
    return [found]


def build_book(root: Path) -> Build:
    """``jupyter-book build . -W -n --keep-going`` in ``root`` (execution is off: seconds)."""
    start = time.monotonic()
    proc = subprocess.run(
        [*jupyter_book_command(), "build", ".", "-W", "-n", "--keep-going"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    seconds = time.monotonic() - start
    pages = toc_entries(yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8")))
    return Build(
        root, root / "_build" / "html", proc.returncode, seconds, proc.stdout + proc.stderr, pages
    )


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Build:
    dest = tmp_path_factory.mktemp("book")
    copy_book(dest)
    return build_book(dest)


def make_png(width: int, height: int) -> bytes:
    """A small RGB gradient as PNG bytes (standard library only)."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 40 % 256, y * 60 % 256, 128))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PROBE = "99_probe"


@pytest.fixture(scope="session")
def probe_book(tmp_path_factory) -> Build:
    """The book plus one chapter notebook with math and a PNG output, so that the Colab link
    and the browser checks are exercised on a notebook page even before chapters exist."""
    dest = tmp_path_factory.mktemp("probe")
    copy_book(dest)
    png = base64.b64encode(make_png(8, 6)).decode()
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "markdown",
                "id": "probe-md",
                "metadata": {},
                "source": "# Probe\n\nInline $x^2$ and\n\n$$\n\\int_0^1 x\\,dx = 1/2\n$$\n",
            },
            {
                "cell_type": "code",
                "id": "probe-code",
                "execution_count": 1,
                "metadata": {},
                "source": "show_png()",
                "outputs": [
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"image/png": png, "text/plain": "<Figure>"},
                    }
                ],
            },
        ],
    }
    (dest / "book" / f"{PROBE}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    toc = yaml.safe_load((dest / "_toc.yml").read_text(encoding="utf-8"))
    toc.setdefault("parts", []).append(
        {"caption": "Probe", "chapters": [{"file": f"book/{PROBE}"}]}
    )
    (dest / "_toc.yml").write_text(yaml.safe_dump(toc, allow_unicode=True), encoding="utf-8")
    return build_book(dest)


def assert_built(build: Build) -> None:
    tail = "\n".join(build.log.splitlines()[-40:])
    assert build.returncode == 0, f"jupyter-book build -W -n failed:\n{tail}"


def test_book_builds_without_warnings(built_book: Build, capsys):
    assert_built(built_book)
    for entry in built_book.pages:
        assert (built_book.html / f"{entry}.html").is_file(), entry
    with capsys.disabled():
        print(f"\nbook build: {built_book.seconds:.1f} s for {len(built_book.pages)} pages")
    assert built_book.seconds < 600, "the build executes nothing; minutes mean a regression"


# An admonition written `:::{note} Running this chapter` renders the title "Note" and puts
# "Running this chapter" at the start of its body: the book titles every admonition itself.
GENERIC_TITLES = {
    "note",
    "tip",
    "hint",
    "important",
    "warning",
    "caution",
    "attention",
    "danger",
    "error",
    "see also",
    "seealso",
}
_ADMONITION = re.compile(
    r'<div class="(?:[^"]* )?admonition(?: [^"]*)?">\s*<p class="admonition-title">(.*?)</p>'
    r"\s*(?:<p>(.*?)</p>)?",
    re.S,
)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


def admonition_problems(html: str) -> list[str]:
    """Admonitions whose title is a generic word, or whose body starts with its own title."""
    problems = []
    for match in _ADMONITION.finditer(html):
        title, body = _text(match.group(1)), _text(match.group(2) or "")
        if title.lower() in GENERIC_TITLES:
            problems.append(f"generic title {title!r} (body starts {body[:40]!r})")
        elif body.lower().startswith(title.lower()):
            problems.append(f"body repeats the title {title!r}")
    return problems


def test_admonition_checker_catches_a_leaked_title():
    leaked = (
        '<div class="note admonition"><p class="admonition-title">Note</p>'
        "<p>Running this chapter Open it on Colab</p></div>"
    )
    good = (
        '<div class="admonition tip"><p class="admonition-title">Running this chapter</p>'
        "<p>Open it on Colab</p></div>"
    )
    assert len(admonition_problems(leaked)) == 1 and admonition_problems(good) == []


def test_every_admonition_has_its_own_title(built_book: Build):
    """In the rendered pages, every admonition's title is its own (never "Note", "Warning":
    the mark of a title given as a directive argument, which leaks into the body)."""
    assert_built(built_book)
    problems, seen = [], 0
    for entry in built_book.pages:
        html = (built_book.html / f"{entry}.html").read_text(encoding="utf-8")
        seen += len(_ADMONITION.findall(html))
        problems += [f"{entry}: {p}" for p in admonition_problems(html)]
    assert seen >= 14, f"found {seen} admonitions; the chapters' boxes are not where expected"
    assert not problems, "\n".join(problems)


def test_launch_links_in_fresh_build(built_book: Build, probe_book: Build):
    assert_built(built_book)
    for path in NOTEBOOKS:
        html = (built_book.html / "book" / f"{path.stem}.html").read_text(encoding="utf-8")
        assert colab_links(html) == {expected_colab_url(path.stem)}, path.stem
    assert_built(probe_book)
    html = (probe_book.html / "book" / f"{PROBE}.html").read_text(encoding="utf-8")
    assert colab_links(html) == {expected_colab_url(PROBE)}
    # a markdown page has no notebook to open
    intro = (built_book.html / "book" / "intro.html").read_text(encoding="utf-8")
    assert not colab_links(intro)


class _DomScan(HTMLParser):
    """What the checks need from a page: title, images, links, scripts, MathJax output."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.h1 = 0
        self.images: list[str] = []
        self.links: list[str] = []
        self.resources: list[str] = []
        self.math_nodes = 0
        self.mjx = 0
        self.mjx_errors = 0
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "title":
            self._in_title = True
        elif tag == "h1":
            self.h1 += 1
        elif tag == "img" and a.get("src"):
            self.images.append(a["src"])
        elif tag == "a" and a.get("href") is not None:
            self.links.append(a["href"])
        elif tag == "link" and a.get("href"):  # stylesheets, preloads, next/prev/index/search
            self.resources.append(a["href"])
        elif tag == "script" and a.get("src"):
            self.resources.append(a["src"])
        if tag in ("span", "div") and "math" in classes:
            self.math_nodes += 1
        if tag == "mjx-container":
            self.mjx += 1
        if tag == "mjx-merror" or "data-mjx-error" in a:
            self.mjx_errors += 1

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def scan(html: str) -> _DomScan:
    parser = _DomScan()
    parser.feed(html)
    return parser


def png_problem(data: bytes) -> str | None:
    """None when ``data`` is a complete PNG whose pixel data decompresses to the right size."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "not a PNG"
    pos, header, idat = 8, None, b""
    while True:
        if pos + 12 > len(data):
            return "truncated (no IEND)"
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length] or b"\0\0\0\0")
        if len(body) != length or zlib.crc32(kind + body) != crc:
            return f"bad {kind!r} chunk"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        return "no IHDR or no pixel data"
    width, height, depth, color, _, _, interlace = header
    if width == 0 or height == 0:
        return "empty image"
    try:
        raw = zlib.decompress(idat)
    except zlib.error as exc:
        return f"pixel data does not decompress: {exc}"
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color)
    if channels is None:
        return f"unknown colour type {color}"
    if interlace == 0 and len(raw) != height * (1 + (width * channels * depth + 7) // 8):
        return "pixel data has the wrong size"
    return None


def image_problem(data: bytes) -> str | None:
    if not data:
        return "empty file"
    if data.startswith(b"\x89PNG"):
        return png_problem(data)
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return "neither PNG nor SVG"
    return None if root.tag.rsplit("}", 1)[-1] == "svg" else "XML but not SVG"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


class Server:
    """``python -m http.server`` for a folder, on 127.0.0.1 and a free port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(self.base, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError("the local HTTP server did not start") from None
                time.sleep(0.1)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def dump_dom(url: str, profile: Path) -> str:
    """The DOM after JavaScript (MathJax included) ran, from headless Chromium."""
    proc = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.strip(), (
        f"chromium failed on {url}:\n{proc.stderr[-2000:]}"
    )
    return proc.stdout


@dataclass
class BrowserReport:
    pages: int = 0
    images: int = 0
    image_sources: list[str] = field(default_factory=list)
    math_pages: int = 0
    links: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"browser: {self.pages} pages, {self.images} images, "
            f"{self.math_pages} pages with math, {self.links} links checked"
        )


def check_pages(build: Build, entries: list[str], report: BrowserReport) -> None:
    """Render each page in Chromium from a local server and check what a reader would see."""
    server = Server(build.html)
    checked: dict[str, bool] = {}
    try:
        with tempfile.TemporaryDirectory() as profile:
            for entry in entries:
                rel = f"{entry}.html"
                url = server.base + rel
                static = scan((build.html / rel).read_text(encoding="utf-8"))
                dom = scan(dump_dom(url, Path(profile)))
                report.pages += 1
                bad = report.problems.append
                if not dom.title.strip() or not dom.h1:
                    bad(f"{rel}: page did not load (no title or no heading)")
                for src in dom.images:
                    report.images += 1
                    report.image_sources.append(src)
                    if src.startswith("data:"):
                        data = base64.b64decode(src.split(",", 1)[1])
                    elif urllib.parse.urlparse(src).scheme in ("http", "https"):
                        bad(f"{rel}: external image {src} (the book must be self-contained)")
                        continue
                    else:
                        status, data = fetch(urllib.parse.urljoin(url, src))
                        if status != 200:
                            bad(f"{rel}: image {src} answers HTTP {status}")
                            continue
                    problem = image_problem(data)
                    if problem:
                        bad(f"{rel}: image {src}: {problem}")
                if static.math_nodes:
                    report.math_pages += 1
                    if dom.mjx < static.math_nodes:
                        bad(
                            f"{rel}: {static.math_nodes} math nodes but {dom.mjx} typeset by "
                            "MathJax (is MathJax served from _static/mathjax?)"
                        )
                    if dom.mjx_errors:
                        bad(f"{rel}: {dom.mjx_errors} MathJax errors")
                for href in dom.links + dom.resources:
                    parsed = urllib.parse.urlparse(href)
                    if parsed.scheme or href.startswith(("#", "//")) or not href.strip():
                        continue  # external (http, https, mailto, javascript, data) or in-page
                    target = urllib.parse.urljoin(url, href)
                    path = urllib.parse.unquote(urllib.parse.urlparse(target).path).lstrip("/")
                    if path in checked:
                        ok = checked[path]
                    else:
                        file = build.html / path
                        ok = checked[path] = (
                            file.is_file() or (file / "index.html").is_file()
                        ) and fetch(target)[0] == 200
                    report.links += 1
                    if not ok:
                        bad(f"{rel}: link {href} does not resolve")
    finally:
        server.close()


needs_chromium = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason="needs Debian's chromium at /usr/bin/chromium "
    "(apt-get install -y --no-install-recommends chromium; .ci/run does)",
)


def require_html(build: Build) -> None:
    if not (build.html / "index.html").is_file():
        pytest.skip("the book did not build (see test_book_builds_without_warnings)")


@needs_chromium
def test_rendered_book_in_chromium(built_book: Build, capsys):
    require_html(built_book)
    report = BrowserReport()
    check_pages(built_book, built_book.pages, report)
    with capsys.disabled():
        print("\n" + report.summary())
    assert not report.problems, "\n".join(report.problems)
    assert report.math_pages >= 1, "the intro has display equations; MathJax was not checked"


@needs_chromium
def test_rendered_notebook_page_in_chromium(probe_book: Build):
    """The same checks on a notebook page with a PNG output, math and a launch button."""
    require_html(probe_book)
    report = BrowserReport()
    check_pages(probe_book, [f"book/{PROBE}"], report)
    assert not report.problems, "\n".join(report.problems)
    assert report.math_pages == 1, report.summary()
    # the notebook's PNG output (MyST-NB writes it to _images/), besides the theme's Colab logo
    assert any("_images/" in src for src in report.image_sources), report.image_sources


# Study names in a chapter's code that it does not read in quick mode
NOT_READ_IN_QUICK_MODE = {
    "07_reaction_diffusion": {"reaction_diffusion_rho"},  # `[] if QUICK else [...]`
    "08_duffing": {"duffing"},  # the task's name (references.reference("duffing"))
}


def test_the_quick_mode_sweep_covers_the_studies_each_chapter_names():
    """book/conftest.py trains the studies of the quick-mode chapters while the tests run, each
    chapter waiting for its own (CHAPTER_STUDIES): every study a chapter names in its code is
    listed for it, and only those; a chapter that reads the book's store in both modes
    (``configure(quick=False)``) trains nothing and is not listed."""
    import importlib.util

    from hsam_core import studies

    spec = importlib.util.spec_from_file_location("book_conftest", ROOT / "book" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    names = set(studies.names())
    named = {}
    for path in chapter_notebooks():
        code = "\n".join(cell_source(c) for c in code_cells(read_notebook(path)))
        if "configure(quick=False)" in code:
            continue
        found = set(re.findall(r"""["']([a-z_]+)["']""", code)) & names
        found -= NOT_READ_IN_QUICK_MODE.get(path.stem, set())
        if found:
            named[path.stem] = found
    assert named == {c: set(s) for c, s in conftest.CHAPTER_STUDIES.items()}
