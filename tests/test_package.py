"""The installable package: pyproject's dependencies agree with the locks, a built wheel carries the
DAGs and the Spark entry point, and an installed copy works from any folder with LMFORGE_HOME."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from core.config import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
DEV_TOOLS = {
    "pytest",
    "pytest-timeout",
    "ruff",
    "mypy",
    "moto",
    "playwright",
    "check-jsonschema",
    "responses",
    "kubernetes-validate",
}


def lock(name: str) -> dict[str, str]:
    """`name==version` lines of a lock file, by canonical name (`-r` includes are not followed)."""
    out = {}
    for line in (REPO_ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{name}: {line} is not pinned"
            out[canonicalize_name(req.name)] = spec.version
    return out


def test_runtime_dependencies_are_pinned_to_the_lock() -> None:
    runtime = lock("requirements.txt")
    deps = [Requirement(d) for d in PYPROJECT["project"]["dependencies"]]
    assert len(deps) >= 25, "pyproject.toml lists the direct runtime dependencies"
    for req in deps:
        (spec,) = req.specifier
        assert spec.operator == "==", f"{req} is not pinned"
        assert runtime.get(canonicalize_name(req.name)) == spec.version, (
            f"{req} disagrees with requirements.txt"
        )
    assert {"apache-airflow", "pyspark", "ray", "torch", "great-expectations", "datasketch"} <= {
        canonicalize_name(r.name) for r in deps
    }


def test_dev_tools_stay_out_of_the_runtime_lock() -> None:
    runtime, dev = lock("requirements.txt"), lock("requirements-dev.txt")
    assert not DEV_TOOLS & set(runtime), f"dev tools in requirements.txt: {sorted(DEV_TOOLS & set(runtime))}"
    assert set(dev) >= DEV_TOOLS, f"missing from requirements-dev.txt: {sorted(DEV_TOOLS - set(dev))}"
    assert not set(runtime) & set(dev), "a package pinned in both locks"
    assert "-r requirements.txt" in (REPO_ROOT / "requirements-dev.txt").read_text().splitlines()
    extras = PYPROJECT["project"]["optional-dependencies"]
    both = {**runtime, **dev}
    for req in map(Requirement, extras["dev"]):
        (spec,) = req.specifier
        assert both.get(canonicalize_name(req.name)) == spec.version, req
    assert {canonicalize_name(Requirement(r).name) for r in extras["dev"]} == DEV_TOOLS
    assert extras["gpu"], "a gpu extra"


def test_the_venv_has_every_locked_version() -> None:
    """What the tests run with is what the locks say (a drifted venv would test something else)."""
    from importlib.metadata import PackageNotFoundError, version

    for name, pinned in {**lock("requirements.txt"), **lock("requirements-dev.txt")}.items():
        try:
            # `==2.13.0` admits a local build such as the CPU wheel's 2.13.0+cpu (PEP 440)
            assert version(name) in SpecifierSet(f"=={pinned}"), (
                f"{name}: installed {version(name)}, locked {pinned}"
            )
        except PackageNotFoundError:
            pytest.fail(f"{name}=={pinned} is locked but not installed (make venv)")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools leaves build/ and *.egg-info in the source folder
    source = tmp_path_factory.mktemp("source") / "lmforge"
    skip = (".git", ".venv", ".data", ".airflow", ".demo", ".bench", ".artifacts", "build", "*.egg-info")
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*skip, "__pycache__"))
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "-w", str(out), "."], cwd=source, check=True, timeout=300, capture_output=True)
    (path,) = out.glob("lmforge-*.whl")
    return path


def test_wheel_ships_the_dags_the_spark_entry_point_and_the_command(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for member in (
        "dags/curation.py",
        "dags/pretrain.py",
        "jobs/spark/main.py",
        "lmforge/cli.py",
        "core/config.py",
    ):
        assert member in names, f"{member} missing from {wheel.name}"
    assert not any(n.startswith(("tests/", "scripts/", ".data/", ".airflow/")) for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "lmforge = lmforge.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_copy_works_from_any_folder(wheel: Path, tmp_path: Path) -> None:
    """Installed into a folder of its own and run from an unrelated one: the code is the installed
    copy, the DAGs folder is inside it, and local files go under the working directory, or under
    LMFORGE_HOME when it is set."""
    site, work, home = tmp_path / "site", tmp_path / "work", tmp_path / "home"
    work.mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    probe = (
        "import json, core.config as c, orchestration.airflow_env as a; env = a.airflow_environ();"
        "print(json.dumps({'code': c.__file__, 'root': c.load_config().storage.root,"
        " 'dags': env['AIRFLOW__CORE__DAGS_FOLDER'], 'home': env['LMFORGE_HOME'],"
        " 'airflow_home': env['AIRFLOW_HOME']}))"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LMFORGE_HOME", "LMFORGE_CONFIG")}

    def run(extra: dict[str, str]) -> dict[str, str]:
        env = {**base, "PYTHONPATH": str(site), **extra}
        done = subprocess.run(
            [sys.executable, "-P", "-c", probe],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    got = run({})
    assert Path(got["code"]).is_relative_to(site), got
    assert Path(got["dags"]) == site / "dags" and (site / "dags" / "curation.py").is_file()
    assert Path(got["root"]) == work.resolve() / ".data"
    assert Path(got["home"]) == work.resolve()
    assert Path(got["airflow_home"]) == work.resolve() / ".airflow"
    got = run({"LMFORGE_HOME": str(home)})
    assert Path(got["root"]) == home.resolve() / ".data"
    # The console script, from the unrelated folder: one JSON line per stage of the registry.
    script = site / "bin" / "lmforge"
    done = subprocess.run(
        [str(script), "stages"],
        cwd=work,
        env={**base, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    stages = [json.loads(line)["name"] for line in done.stdout.splitlines()]
    assert {"crawl", "near_dedup", "shards"} <= set(stages)


def test_pip_install_dot_brings_every_locked_runtime_package() -> None:
    """The closure of pyproject's dependencies, resolved as pip does from the installed metadata (an
    extra counts only where the distribution declares it), covers the whole runtime lock: a package
    the tests had only because it was locked would be missing after a plain `pip install .` (as
    lxml_html_clean was: justext asks for lxml[html_clean], an extra lxml 6.1 no longer declares)."""
    from importlib.metadata import PackageNotFoundError, metadata, requires

    seen: set[str] = set()
    todo = [Requirement(d) for d in PYPROJECT["project"]["dependencies"]]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            declared = set(metadata(name).get_all("Provides-Extra") or [])
        except PackageNotFoundError:
            continue
        extras = {""} | (set(req.extras) & declared)
        for line in requires(name) or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(sub)
    closure = {k.split("[")[0] for k in seen}
    orphans = set(lock("requirements.txt")) - closure
    assert not orphans, f"locked but not brought by `pip install .`: {sorted(orphans)}"
