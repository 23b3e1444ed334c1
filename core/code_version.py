"""A stage's code version: a hash of the project source it runs, so a code change reruns it.

A committed stage is skipped when its config and inputs are unchanged; without the code in its
fingerprint, an edited filter would silently reuse yesterday's output. The version covers the
stage's entry function (its own source, the project modules it and its module import, and the
helpers of its module it calls) and the transitive closure of project modules imported from there,
found statically with `ast` (nothing is imported or run). Third-party libraries are not hashed:
their versions are pinned in requirements.txt.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from core.config import REPO_ROOT

PROJECT_PACKAGES = ("core", "jobs", "training", "demo", "orchestration", "lmforge")


def module_file(module: str, root: Path = REPO_ROOT) -> Path | None:
    """The source file of a project module (a package's `__init__.py`), or None if not ours."""
    if module.split(".", 1)[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _tree(module: str, root: Path) -> ast.Module:
    path = module_file(module, root)
    if path is None:
        raise ValueError(f"{module!r} is not a module of this project")
    return ast.parse(path.read_text(), str(path))  # no cache: an edit must be seen (mtimes are coarse)


def _imported(nodes: list[ast.AST], root: Path) -> set[str]:
    """Project modules named by the import statements among `nodes` (walked recursively);
    `from pkg import name` counts `pkg.name` when that is a module, else `pkg`."""
    found: set[str] = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import):
                found.update(a.name for a in sub.names if module_file(a.name, root))
            elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                for alias in sub.names:
                    name = f"{sub.module}.{alias.name}"
                    found.add(name if module_file(name, root) else sub.module)
    return {m for m in found if module_file(m, root)}


def _closure(modules: set[str], root: Path) -> set[str]:
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        parts = mod.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts)) if module_file(".".join(parts[:i]), root)]
        todo += sorted(_imported([_tree(mod, root)], root) - seen)
    return seen


def _function_parts(module: str, function: str, root: Path) -> tuple[list[str], set[str]]:
    """Source segments of `function`, of the same-module functions and classes it names and of the
    module's other top-level statements (imports, constants); and the project modules they import."""
    tree = _tree(module, root)
    source = module_file(module, root).read_text()  # type: ignore[union-attr]
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    if function not in defs:
        raise ValueError(f"{module}:{function} does not exist")
    top = [n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.ClassDef)]
    segments = [ast.get_source_segment(source, n) or "" for n in top]  # imports, constants
    imports, todo, seen = _imported(list(top), root), [function], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        node = defs[name]
        segments.append(ast.get_source_segment(source, node) or "")
        imports |= _imported([node], root)
        todo += [n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in defs]
    return segments, imports


def code_version(entry: str, *extra_modules: str, root: Path = REPO_ROOT) -> str:
    """sha256 over `entry` ("module:function") and every project module it reaches."""
    module, function = entry.split(":")
    segments, imports = _function_parts(module, function, root)
    h = hashlib.sha256()
    for segment in segments:
        h.update(segment.encode() + b"\0")
    for mod in sorted(_closure(imports | set(extra_modules), root)):
        h.update(mod.encode() + b"\0" + module_file(mod, root).read_bytes() + b"\0")  # type: ignore[union-attr]
    return h.hexdigest()
