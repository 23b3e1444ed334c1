"""Source code: a directory tree or a git repository, one document per file.

A git working tree (`.git` present) is listed with `git ls-files`, so only tracked files count and
ignored ones (build output, virtualenvs) never do; the HEAD commit, its time and the remote (without
credentials) are recorded. A plain tree is walked, hidden folders and `__pycache__` left out.

The language comes from the file name (a subset of GitHub linguist's `languages.yml` extensions and
file names, then a `#!` interpreter line). The repository's top-level licence files (`LICENSE`,
`COPYING`, `LICENSE-MIT`, ...) are recorded as `license_source` and run through the licence detector
(`jobs.copyright.licenses.detect`, ScanCode's licence database); the expression found is the
`license` of every file of the tree, else the declared `sources.code_license`, else None: a file
saying "All rights reserved." names no licence, and unknown stays unknown. A file's own licence (an
`SPDX-License-Identifier:` tag, a header) is the copyright stage's to find; it wins over this one.

Files are rejected, with the rule in the reason, when they are:
- vendored: GitHub linguist `lib/linguist/vendor.yml` path patterns (`node_modules/`, `vendor/`, ...);
- generated: linguist `generated.rb` file names (`*.pb.go`, `*_pb2.py`, lock files) or, as in
  CodeParrot's Codex-style cleaning, a marker ("auto-generated", "DO NOT EDIT", ...) in the first 5 lines;
- minified `.js`/`.css`: mean line length > 100 or a line > 1000 characters (Codex, Chen et al.
  2021, section 3.1, as applied by CodeParrot and StarCoder);
- binary (NUL bytes), empty, symlinks (they may point outside the tree), or over the size cap.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from core.schema import make_document
from jobs.copyright.licenses import Detection, detect
from jobs.readers.connectors import (
    DEFAULT_MAX_FILE_BYTES,
    Ingested,
    file_time,
    guarded,
    size_reason,
    text_reason,
)
from jobs.web.charset import decode_file, is_binary

LANGUAGES = {
    ".py": "python", ".pyi": "python", ".pyw": "python", ".pyx": "cython", ".c": "c", ".h": "c", ".cc": "c++",
    ".cpp": "c++", ".cxx": "c++", ".hh": "c++", ".hpp": "c++", ".hxx": "c++", ".cs": "c#",
    ".java": "java", ".kt": "kotlin", ".kts": "kotlin", ".scala": "scala", ".groovy": "groovy",
    ".gradle": "groovy", ".go": "go", ".rs": "rust", ".swift": "swift", ".m": "objective-c",
    ".mm": "objective-c++", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript", ".vue": "vue", ".rb": "ruby",
    ".php": "php", ".pl": "perl", ".pm": "perl", ".lua": "lua", ".r": "r", ".jl": "julia",
    ".hs": "haskell", ".ml": "ocaml", ".mli": "ocaml", ".fs": "f#", ".ex": "elixir", ".exs": "elixir",
    ".erl": "erlang", ".clj": "clojure", ".dart": "dart", ".zig": "zig", ".nim": "nim",
    ".f90": "fortran", ".f": "fortran", ".s": "assembly", ".asm": "assembly", ".sh": "shell",
    ".bash": "shell", ".zsh": "shell", ".ps1": "powershell", ".bat": "batchfile", ".sql": "sql",
    ".html": "html", ".htm": "html", ".css": "css", ".scss": "scss", ".less": "less",
    ".md": "markdown", ".rst": "restructuredtext", ".tex": "tex", ".json": "json", ".yaml": "yaml",
    ".yml": "yaml", ".toml": "toml", ".xml": "xml", ".ini": "ini", ".cfg": "ini", ".cmake": "cmake",
    ".mk": "makefile", ".proto": "protocol-buffer", ".dockerfile": "dockerfile", ".tf": "hcl",
}  # fmt: skip
FILENAMES = {
    "Makefile": "makefile", "makefile": "makefile", "GNUmakefile": "makefile", "Dockerfile": "dockerfile",
    "Containerfile": "dockerfile", "CMakeLists.txt": "cmake", "Rakefile": "ruby", "Gemfile": "ruby",
    "Vagrantfile": "ruby", "Jenkinsfile": "groovy", "BUILD": "starlark", "BUILD.bazel": "starlark",
    "WORKSPACE": "starlark", "meson.build": "meson", "SConstruct": "python", "setup.cfg": "ini",
}  # fmt: skip
INTERPRETERS = {"python": "python", "bash": "shell", "sh": "shell", "zsh": "shell", "node": "javascript",
                "ruby": "ruby", "perl": "perl", "php": "php", "lua": "lua", "Rscript": "r"}  # fmt: skip

# A subset of linguist's vendor.yml, anchored at path components, plus `site-packages/` (installed
# packages copied into a tree).
VENDORED = [
    (name, re.compile(pattern))
    for name, pattern in (
        ("node_modules/", r"(^|/)node_modules/"), ("bower_components/", r"(^|/)bower_components/"),
        ("vendor/", r"(^|/)[Vv]+endors?/"), ("third_party/", r"(^|/)(third|3rd)[-_]?party/"),
        ("external/", r"(^|/)[Ee]xtern(al)?/"), ("deps/", r"^deps/"), ("dependencies/", r"^[Dd]ependencies/"),
        ("dist/", r"(^|/)dist/"), ("cache/", r"(^|/)cache/"), ("Godeps/", r"(^|/)Godeps/_workspace/"),
        ("Pods/", r"^Pods/"), ("Carthage/", r"^Carthage/"), ("gradle-wrapper", r"(^|/)gradlew(\.bat)?$"),
        ("gradle/wrapper/", r"(^|/)gradle/wrapper/"), ("min.js", r"(\.|-)min\.(js|css)$"),
        ("jquery", r"(^|/)jquery([^.]*)\.js$"), ("bootstrap", r"(^|/)bootstrap([^.]*)\.(js|css|less|scss)$"),
        ("d.ts", r"\.d\.ts$"), ("sphinx-build", r"(^|/)docs?/_?(build|themes?|templates?|static)/"),
        ("autoconf", r"(^|/)(configure|config\.guess|config\.sub|aclocal\.m4|libtool\.m4|ltmain\.sh)$"),
 ("site-packages/", r"(^|/)site-packages/"),
    )
]  # fmt: skip
# linguist generated.rb: protobuf/gRPC stubs and package-manager lock files.
GENERATED_NAMES = [
    (name, re.compile(pattern))
    for name, pattern in (
        ("protobuf", r"(\.pb\.(go|cc|h)|_pb2(_grpc)?\.pyi?|\.pb\.swift|_pb\.(js|d\.ts))$"),
        ("lockfile", r"(^|/)(package-lock\.json|yarn\.lock|pnpm-lock\.yaml|Cargo\.lock|poetry\.lock|"
                     r"Pipfile\.lock|Gemfile\.lock|composer\.lock|go\.sum|uv\.lock|flake\.lock)$"),
    )
]  # fmt: skip
# Markers in the first 5 lines: CodeParrot's ("auto-generated", "autogenerated", "automatically
# generated") plus the "Code generated ... DO NOT EDIT." convention of Go and protoc and the "This file
# is generated by" line-opening comment; prose that merely mentions generation does not match.
GENERATED_MARKERS = [
    (name, re.compile(pattern, re.M))
    for name, pattern in (
        ("auto-generated", r"auto-?generated"),
        ("automatically generated", r"automatically generated|generated automatically"),
        ("generated by", r"^\W*(generated by\b|this (file|code|module) (is|was|has been) generated\b)"),
        ("code generated", r"^\W*code generated\b"),
        ("do not edit", r"do not edit"),
    )
]
MINIFIED_SUFFIXES = frozenset({".js", ".mjs", ".cjs", ".css"})
LICENSE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|UNLICENSE)([-._][\w.-]*)?$", re.I)
LICENSE_HEAD_BYTES = 200_000  # the GPL-3.0 text is 35 KB; a "licence file" may be any size
# Rust API guidelines C-PERMISSIVE: a crate under "MIT OR Apache-2.0" ships both texts, as LICENSE-MIT
# and LICENSE-APACHE; the two files are alternatives for the user, not two conditions to meet.
DUAL_LICENSE = {
    "MIT": re.compile(r"^LICEN[CS]E[-._]MIT\b", re.I),
    "Apache-2.0": re.compile(r"^LICEN[CS]E[-._]APACHE\b", re.I),
}
_LICENSE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+:-]*")


def detect_file(path: Path) -> Detection | None:
    """The licence of a licence file, from its head only."""
    with path.open("rb") as fh:
        return detect(decode_file(fh.read(LICENSE_HEAD_BYTES))[0])


def combine(found: dict[str, str]) -> str | None:
    """One SPDX expression for the licence files' expressions (file name -> expression): the Rust
    dual licence as OR, the rest joined with AND. A file holding the text of a licence that another
    file's expression names (LICENSE "Apache-2.0 OR BSD-3-Clause" with LICENSE.APACHE) adds nothing."""
    parts = list(dict.fromkeys(found.values()))
    named = {p: set(_LICENSE_ID.findall(p)) - {"AND", "OR", "WITH"} for p in parts}
    parts = [p for p in parts if not any(q != p and p in named[q] for q in parts)]
    if all(any(e == spdx and rule.match(f) for f, e in found.items()) for spdx, rule in DUAL_LICENSE.items()):
        parts = ["MIT OR Apache-2.0"] + [p for p in parts if p not in DUAL_LICENSE]
    if len(parts) <= 1:
        return parts[0] if parts else None
    return " AND ".join(f"({p})" if " " in p else p for p in parts)


def repository_license(root: Path, license_files: list[str], declared: str | None) -> dict[str, Any]:
    """`license`, `license_source` and the `code.license_*` annotations every file of the tree gets:
    detected in the licence files, else declared, else none."""
    facts: dict[str, Any] = {"license": declared, "code.license_detected": "declared" if declared else "none"}
    if license_files:
        facts["license_source"] = ", ".join(license_files)
    found = {f: d for f in license_files if (d := detect_file(root / f))}
    if found:
        facts["license"] = combine({f: d.expression for f, d in found.items()})
        facts["code.license_detected"] = "text"
        facts["code.license_confidence"] = f"{min(d.confidence for d in found.values()):.4f}"
    return facts


def language_of(rel: str, head: bytes = b"") -> str | None:
    """Language from the file name, else from a `#!` line in `head`."""
    name = PurePosixPath(rel).name
    if name in FILENAMES:
        return FILENAMES[name]
    if name.startswith("Dockerfile."):
        return "dockerfile"
    if lang := LANGUAGES.get(PurePosixPath(name).suffix.lower()):
        return lang
    if head.startswith(b"#!"):
        words = head.split(b"\n", 1)[0][2:].decode("latin-1").split()
        program = words[1] if words and words[0].endswith("/env") and len(words) > 1 else (words or [""])[0]
        return INTERPRETERS.get(re.sub(r"[\d.]+$", "", program.rsplit("/", 1)[-1]))
    return None


def vendored(rel: str) -> str | None:
    return next((name for name, pattern in VENDORED if pattern.search(rel)), None)


def generated(rel: str, text: str = "") -> str | None:
    """The rule that marks the file generated: its name, or a marker in its first 5 lines."""
    if name := next((name for name, pattern in GENERATED_NAMES if pattern.search(rel)), None):
        return name
    head = "\n".join(text.splitlines()[:5]).lower()
    return next((name for name, pattern in GENERATED_MARKERS if pattern.search(head)), None)


def minified(rel: str, text: str, max_mean: float = 100.0, max_line: int = 1000) -> str | None:
    if PurePosixPath(rel).suffix.lower() not in MINIFIED_SUFFIXES:
        return None
    lengths = [len(line) for line in text.splitlines()] or [0]
    if max(lengths) > max_line:
        return f"max_line_length={max(lengths)}"
    mean = sum(lengths) / len(lengths)
    return f"mean_line_length={mean:.0f}" if mean > max_mean else None


# A repository's own .git/config is data from a stranger: settings that make git run a program
# (core.fsmonitor on every index read, signature verifiers, hooks, pagers, diff drivers) are
# overridden on the command line, which wins over every config file (git-config(1), "FILES").
SAFE_GIT = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.pager=cat",
    "core.sshCommand=false",
    "gpg.program=false",
    "gpg.ssh.program=false",
    "gpg.x509.program=false",
    "log.showSignature=false",
    "diff.external=",
    "protocol.allow=never",
)


def _git(root: Path, *args: str) -> str | None:
    """Read-only git on an ingested tree, with every config-driven command disabled."""
    overrides = [arg for setting in SAFE_GIT for arg in ("-c", setting)]
    # No safe.directory: git refuses a tree owned by someone else, which is then read without git.
    cmd = ["git", *overrides, "-C", str(root), *args]
    try:
        out = subprocess.run(cmd, capture_output=True, check=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return os.fsdecode(out.stdout) if args[0] == "ls-files" else out.stdout.decode("utf-8", "replace").strip()


def list_files(root: Path) -> tuple[list[str], dict[str, Any]]:
    """(relative POSIX paths, repository facts). Tracked files only in a git working tree."""
    listing = _git(root, "ls-files", "-z") if (root / ".git").exists() else None
    if listing is not None:
        facts: dict[str, Any] = {"code.commit": _git(root, "rev-parse", "HEAD")}
        if stamp := _git(root, "log", "-1", "--format=%ct"):
            facts["created_at"] = datetime.fromtimestamp(int(stamp), tz=UTC)
        if remote := _git(root, "config", "--get", "remote.origin.url"):
            facts["code.remote"] = re.sub(r"//[^/@]+@", "//", remote)  # never keep credentials
        return sorted({p for p in listing.split("\0") if p}), facts
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        found += [Path(dirpath, name).relative_to(root).as_posix() for name in filenames]
    return sorted(found), {}


def _check(path: Path, rel: str, max_file_bytes: int) -> tuple[str, str, str, str | None]:
    """(text, language, encoding, reject reason); path rules first, so rejected files are rarely read."""
    if path.is_symlink():
        return "", "", "", "ingest_symlink"
    if reason := size_reason(path, max_file_bytes):
        return "", "", "", reason
    if rule := vendored(rel):
        return "", "", "", f"code_vendored:{rule}"
    if rule := generated(rel):
        return "", "", "", f"code_generated:{rule}"
    with path.open("rb") as fh:
        head = fh.read(8192)
    if is_binary(head):
        return "", "", "binary", "ingest_binary_file"
    lang = language_of(rel, head)
    if lang is None:
        name = PurePosixPath(rel)
        return "", "", "", f"code_unknown_language:{name.suffix.lower() or name.name}"
    text, encoding = decode_file(path.read_bytes(), html=lang == "html")
    if reason := text_reason(text, encoding):
        return "", lang, encoding, reason
    if rule := generated(rel, text):
        return "", lang, encoding, f"code_generated:{rule}"
    if rule := minified(rel, text):
        return "", lang, encoding, f"code_minified:{rule}"
    return text, lang, encoding, None


def _file(root: Path, rel: str, cap: int, facts: dict[str, Any]) -> Ingested:
    path = root / rel
    text, lang, encoding, reason = _check(path, rel, cap)
    annotations = {"code.path": rel, "code.language": lang, "ingest.encoding": encoding}
    annotations.update({k: v for k, v in facts.items() if k.startswith("code.") and v})
    doc = make_document(
        "code",
        f"{root.name}/{rel}",
        text,
        domain=root.name,
        license=facts.get("license"),
        license_source=facts.get("license_source"),
        content_type="text/x-source",
        created_at=facts.get("created_at") or (None if path.is_symlink() else file_time(path)),
        annotations={k: v for k, v in annotations.items() if v},
    )
    return doc, reason


def iter_code(
    root: Path, license_id: str | None = None, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> Iterator[Ingested]:
    """One document per file of the tree or repository at `root`; the licence files are provenance,
    not documents. `license_id` is the declared licence, used when the licence files name none."""
    files, facts = list_files(root)
    license_files = [f for f in files if "/" not in f and LICENSE_FILE.match(f) and (root / f).is_file()]
    license_files.sort(key=lambda f: (f.upper().startswith("COPYING"), f))
    facts.update(repository_license(root, license_files, license_id or None))
    for rel in files:
        if rel in license_files or not ((root / rel).is_file() or (root / rel).is_symlink()):
            continue  # license files are provenance; submodule links and deleted files are not files
        build = partial(_file, root, rel, max_file_bytes, facts)
        yield guarded("code", f"{root.name}/{rel}", build, domain=root.name)
