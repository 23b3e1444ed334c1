"""Build the demo corpus from real text that any machine with Python (and Debian) has offline.

Why: crawl, extract, dedup, quality and license stages need realistic input, and neither the demo
nor the tests may download anything. Three parts:

- `site/`:  the standard library's pydoc pages as a small website, with `robots.txt` disallowing
  `/private/` and a linked `private/secret.html` that only an impolite crawler fetches;
- `books/`: long prose: the license texts in /usr/share/common-licenses and long descriptions of
  the installed packages, with `_sources.json` (file -> origin and license);
- `code/`:  standard-library `.py` files plus the Python license.

Same arguments on the same Python give the same bytes. A build goes to a temporary sibling that is
renamed into place; `_BUILT.json` is written last, and a build that finds one with the same
arguments skips.
"""

from __future__ import annotations

import argparse
import email.message
import hashlib
import html
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from dataclasses import dataclass
from itertools import chain, zip_longest
from pathlib import Path
from typing import Any

BUILT = "_BUILT.json"
PARTS = ("site", "books", "code")
_FORMAT = 1  # bump when what a build writes changes, so old builds are not reused
_REPO_ROOT = Path(__file__).resolve().parents[1]

ROBOTS_TXT = "User-agent: *\nDisallow: /private/\n"
SECRET_PAGE = "private/secret.html"
# Rendered first so that even a small site has the pages most others link to (builtins.html).
_PREFERRED_MODULES = (
    "builtins", "json", "os", "re", "collections", "functools", "itertools", "pathlib", "string",
    "textwrap", "typing", "dataclasses", "datetime", "html", "csv", "logging", "argparse", "math",
    "shutil", "io",
)  # fmt: skip
# Importing these opens a browser or a window, prints, touches the terminal, or is the test suite.
_SKIP_MODULES = frozenset({"antigravity", "this", "idlelib", "tkinter", "test", "readline", "__main__"})

MIN_BOOK_WORDS = 800
_LICENSE_DIR = Path("/usr/share/common-licenses")
_LICENSE_SPDX = {
    "Apache-2.0": "Apache-2.0", "Artistic": "Artistic-1.0", "BSD": "BSD-3-Clause",
    "CC0-1.0": "CC0-1.0", "GFDL-1.2": "GFDL-1.2", "GFDL-1.3": "GFDL-1.3", "GPL-1": "GPL-1.0",
    "GPL-2": "GPL-2.0", "GPL-3": "GPL-3.0", "LGPL-2": "LGPL-2.0", "LGPL-2.1": "LGPL-2.1",
    "LGPL-3": "LGPL-3.0", "MPL-1.1": "MPL-1.1", "MPL-2.0": "MPL-2.0",
}  # fmt: skip

MAX_CODE_BYTES = 200_000
_CODE_SKIP_DIRS = frozenset({"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"})


def build_demo_corpus(
    out_dir: Path, *, max_pages: int = 150, max_books: int = 40, max_code_files: int = 300
) -> dict[str, int]:
    """Build (or reuse) the corpus at `out_dir`; returns counts per part.

    `site` counts module pages (index.html and private/secret.html come on top), `books` the
    `.txt` files, `code` the `.py` files. A non-empty directory that is not a demo corpus is
    never replaced.
    """
    out_dir = Path(out_dir)
    arguments = {"max_pages": max_pages, "max_books": max_books, "max_code_files": max_code_files}
    for name, value in arguments.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    stamp: dict[str, Any] = {"format": _FORMAT, "python": sys.version, "arguments": arguments}
    built = _read_built(out_dir)
    if built is not None and all(built.get(k) == v for k, v in stamp.items()):
        return {part: built["counts"][part] for part in PARTS}
    _check_replaceable(out_dir)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)
        counts = {
            "site": _build_site(tmp / "site", max_pages),
            "books": _build_books(tmp / "books", max_books),
            "code": _build_code(tmp / "code", max_code_files),
        }
        _write(tmp / BUILT, json.dumps({**stamp, "counts": counts}, indent=2, sort_keys=True) + "\n")
        _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


# ---------------------------------------------------------------- site


def _build_site(site: Path, max_pages: int) -> int:
    pages = _render_pydoc_pages(_candidate_modules(), max_pages) if max_pages else {}
    kept = set(pages)
    for name, page in pages.items():
        _write(site / f"{name}.html", _fix_page(page, kept))
    _write(site / "index.html", _index_page(sorted(kept)))
    _write(site / "robots.txt", ROBOTS_TXT)
    _write(site / SECRET_PAGE, _secret_page())
    return len(pages)


def _candidate_modules() -> list[str]:
    """Preferred modules first, then the rest sorted; private, test and side-effect ones left out."""
    names = [
        n
        for n in sorted(sys.stdlib_module_names)
        if not n.startswith("_") and n not in _SKIP_MODULES and not n.startswith("turtle")
    ]
    preferred = [n for n in _PREFERRED_MODULES if n in names]
    return preferred + [n for n in names if n not in preferred]


def _render_pydoc_pages(names: list[str], max_pages: int) -> dict[str, str]:
    """Render in a child process with a fixed hash seed and a minimal environment.

    Why a child: importing dozens of modules installs handlers, patches and warnings we do not want
    in the caller; set and dict reprs in the pages depend on the hash seed; and `os.environ` shows
    up in the `os` page, which must neither leak the caller's variables nor vary with them.
    """
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp, "pages.json")
        request = {"names": names, "max_pages": max_pages, "out": str(result)}
        code = "import sys; sys.path.append(sys.argv[1]); import demo.corpus as m; m._render_worker()"
        env = {"PYTHONHASHSEED": "0", "LC_ALL": "C.UTF-8", "PATH": os.defpath}
        proc = subprocess.run(
            [sys.executable, "-P", "-c", code, str(_REPO_ROOT)],  # -P: no cwd on sys.path
            input=json.dumps(request),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=_REPO_ROOT,
            timeout=600,
        )
        if proc.returncode != 0 or not result.exists():
            raise RuntimeError(f"pydoc render worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
        pages: dict[str, str] = json.loads(result.read_text(encoding="utf-8"))
    return pages


def _render_worker() -> None:
    """Child-process body: request JSON on stdin, pages JSON to the requested file, nothing printed."""
    import contextlib
    import io
    import pydoc

    request = json.loads(sys.stdin.read())
    doc = pydoc.HTMLDoc()
    pages: dict[str, str] = {}
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        for name in request["names"]:
            if len(pages) >= request["max_pages"]:
                break
            try:
                module = importlib.import_module(name)
                pages[name] = doc.page(pydoc.describe(module), doc.document(module, name))
            except (Exception, SystemExit):
                continue  # not importable here (another OS, a missing C library) or not renderable
            sink.seek(0)
            sink.truncate()
    Path(request["out"]).write_text(json.dumps(pages), encoding="utf-8")


_ANCHOR = re.compile(r'<a href="([^"]*)">(.*?)</a>', re.DOTALL)
_ADDRESS = re.compile(r"(\bat(?:&nbsp;| )0x|\bhandle )[0-9a-fA-F]+")


def _fix_page(page: str, kept: set[str]) -> str:
    """Keep links between rendered pages; unlink `file:` paths and modules not on the site.

    Object addresses (`<object at 0x7f..>`, ctypes' `handle 7f..`) change every run: they become 0.
    """

    def fix(match: re.Match[str]) -> str:
        href, text = match.group(1), match.group(2)
        if href == ".":
            return f'<a href="index.html">{text}</a>'
        if href.startswith("file:"):
            return text
        target = href.split("#", 1)[0]
        if target.endswith(".html") and ":" not in target and "/" not in target and target[:-5] not in kept:
            return text
        return match.group(0)

    return _ANCHOR.sub(fix, _ADDRESS.sub(r"\g<1>0", page))


def _index_page(names: list[str]) -> str:
    items = "\n".join(f'<li><a href="{n}.html">{html.escape(n)}</a></li>' for n in names)
    return _html_page(
        "Python standard library: module index",
        "<h1>Python standard library</h1>\n"
        f"<p>Documentation of {len(names)} modules, generated by pydoc.</p>\n"
        f"<ul>\n{items}\n</ul>\n"
        f'<p><a href="{SECRET_PAGE}">Staff area</a></p>',
    )


def _secret_page() -> str:
    return _html_page(
        "Staff area",
        "<h1>Staff area</h1>\n"
        "<p>robots.txt disallows this directory: a crawler that honours it never fetches this page, "
        "so finding this text in a crawl means robots.txt was ignored.</p>\n"
        '<p><a href="../index.html">Back to the index</a></p>',
    )


def _html_page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


# ---------------------------------------------------------------- books


@dataclass(frozen=True)
class _Book:
    name: str
    text: str
    origin: str
    license: str | None


def _build_books(books: Path, max_books: int) -> int:
    """License texts and package descriptions, alternating, so small builds have both kinds."""
    sources: dict[str, dict[str, str | None]] = {}
    seen: set[str] = set()
    alternating = chain.from_iterable(zip_longest(_license_books(), _package_books()))
    for book in alternating:
        if len(sources) >= max_books:
            break
        if book is None:
            continue
        digest = hashlib.sha256(book.text.encode()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        _write(books / book.name, book.text)
        sources[book.name] = {"origin": book.origin, "license": book.license}
    _write(books / "_sources.json", json.dumps(sources, indent=2, sort_keys=True) + "\n")
    return len(sources)


def _license_books() -> list[_Book]:
    if not _LICENSE_DIR.is_dir():
        return []
    found = []
    for path in sorted(_LICENSE_DIR.iterdir()):
        if path.is_symlink() or not path.is_file() or not re.fullmatch(r"[\w.+-]+", path.name):
            continue
        text = _normalize_text(path.read_text(encoding="utf-8", errors="replace"))
        if len(text.split()) >= MIN_BOOK_WORDS:
            found.append(_Book(f"license-{path.name}.txt", text, str(path), _LICENSE_SPDX.get(path.name)))
    return found


def _package_books() -> list[_Book]:
    """Long descriptions of the installed distributions, one per name, sorted by name."""
    by_name: dict[str, importlib.metadata.Distribution] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            by_name.setdefault(re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"), dist)
    found = []
    for slug, dist in sorted(by_name.items()):
        text = _normalize_text(_description(dist))
        if len(text.split()) >= MIN_BOOK_WORDS:
            meta = dist.metadata
            origin = f"python-package:{meta['Name']}=={meta['Version']}"
            found.append(_Book(f"pkg-{slug}.txt", text, origin, _package_license(dist)))
    return found


def _description(dist: importlib.metadata.Distribution) -> str:
    """The METADATA body, or the older `Description` header with its continuation indent removed."""
    meta = dist.metadata
    body = meta.get_payload() if isinstance(meta, email.message.Message) else None
    if isinstance(body, str) and body.strip():
        return body
    return re.sub(r"\n(?: {8}| {7}\|)", "\n", _field(dist, "Description"))


def _package_license(dist: importlib.metadata.Distribution) -> str | None:
    """License-Expression, else a one-line License field (some packages put the whole text there)."""
    expression = _field(dist, "License-Expression").strip()
    if expression:
        return expression
    license_ = _field(dist, "License").strip()
    return license_ if license_ and "\n" not in license_ and len(license_) <= 100 else None


def _field(dist: importlib.metadata.Distribution, key: str) -> str:
    values = dist.metadata.get_all(key)
    return str(values[0]) if values else ""


def _normalize_text(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip() + "\n"


# ---------------------------------------------------------------- code


def _build_code(code: Path, max_code_files: int) -> int:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    count = 0
    for rel in _stdlib_sources(stdlib):
        if count >= max_code_files:
            break
        source = (stdlib / rel).read_bytes()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarnings of old escape sequences
                compile(source, rel, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            continue
        target = code / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source)
        count += 1
    _write(code / "LICENSE", _python_license(stdlib))
    return count


def _stdlib_sources(stdlib: Path) -> list[str]:
    """Relative POSIX paths of the stdlib's `.py` files, tests and bundled packages left out."""
    found = []
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in _CODE_SKIP_DIRS and not d.startswith("."))
        for name in files:
            path = Path(root, name)
            if name.endswith(".py") and not path.is_symlink() and path.stat().st_size <= MAX_CODE_BYTES:
                found.append(path.relative_to(stdlib).as_posix())
    return sorted(found)


def _python_license(stdlib: Path) -> str:
    for directory in (Path(sys.base_prefix), stdlib, *stdlib.parents):
        candidate = directory / "LICENSE.txt"
        if candidate.is_file():
            return _normalize_text(candidate.read_text(encoding="utf-8", errors="replace"))
    return (
        "These files are from the Python standard library, distributed under the Python Software\n"
        "Foundation License Version 2 (SPDX: PSF-2.0); see https://docs.python.org/3/license.html\n"
    )


# ---------------------------------------------------------------- commit


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8", "xmlcharrefreplace"))


def _read_built(out_dir: Path) -> dict[str, Any] | None:
    try:
        built = json.loads((out_dir / BUILT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    counts = built.get("counts") if isinstance(built, dict) else None
    return built if isinstance(counts, dict) and set(counts) == set(PARTS) else None


def _check_replaceable(out_dir: Path) -> None:
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise FileExistsError(f"{out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / BUILT).exists():
        raise FileExistsError(f"refusing to replace {out_dir}: not empty and not a demo corpus (no {BUILT})")


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished build over `out_dir`; the old copy is moved aside first, then deleted."""
    if not out_dir.exists():
        os.rename(tmp, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.rename(out_dir, old)  # onto an empty directory: allowed on POSIX
    try:
        os.rename(tmp, out_dir)
    except OSError:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.corpus", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--max-pages", type=int, default=150, help="pydoc module pages on the site")
    parser.add_argument("--max-books", type=int, default=40, help="license and package texts")
    parser.add_argument("--max-code-files", type=int, default=300, help="stdlib .py files")
    args = parser.parse_args(argv)
    counts = build_demo_corpus(
        args.out_dir, max_pages=args.max_pages, max_books=args.max_books, max_code_files=args.max_code_files
    )
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
