"""The deployment files agree with the Compose spec, with each other, with the `compose` profile and
with requirements.txt. Offline: no Docker, no cluster, no network (this sandbox has no Docker
engine). What can run here does: Airflow's and Ray's own CLI parsers read every command the stack
runs, a real TensorBoard reads a run that training/tracking.py uploaded to a real S3 server (moto)
with the compose service's command and environment, and a real Ray head with token authentication
answers the healthcheck URL."""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from core.config import REPO_ROOT, PipelineConfig, load_config

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "infra" / "Dockerfile"
PYPROJECT = REPO_ROOT / "pyproject.toml"
K8S = REPO_ROOT / "infra" / "k8s"
VENV_BIN = Path(sys.executable).parent
SERVICES = {
    "minio",
    "minio-init",
    "postgres",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "spark-master",
    "spark-worker",
    "ray-head",
    "ray-worker",
    "ray-worker-gpu",
    "tensorboard",
}
AIRFLOW = sorted(s for s in SERVICES if s.startswith("airflow-"))
THIRD_PARTY = {"minio", "minio-init", "postgres"}
OURS = sorted(SERVICES - THIRD_PARTY)
ONE_SHOT = {"minio-init", "airflow-init"}
S3_USERS = (*AIRFLOW, "spark-worker", "ray-head", "ray-worker", "ray-worker-gpu", "tensorboard")
CODE_ROOT = "/opt/lmforge"

# What the third-party images ship that the stack calls, by image repository (checked by hand
# against each image at its pinned tag; a new command on these images must be added here first):
#   minio/minio  /usr/bin/minio (the default entrypoint runs it with `command`), /usr/bin/mc
#   minio/mc     /usr/bin/mc on UBI micro, which has /bin/sh
#   postgres     the server and its client tools (pg_isready, psql) on Debian bookworm (sh, bash)
THIRD_PARTY_SHIPS = {
    "minio/minio": {"minio", "mc"},
    "minio/mc": {"mc", "/bin/sh", "sh"},
    "postgres": {"postgres", "pg_isready", "psql", "sh", "bash"},
}
THIRD_PARTY_ENTRYPOINT = {"minio/minio": "minio", "minio/mc": "mc", "postgres": "postgres"}
# What infra/Dockerfile's apt packages put on PATH (Debian bookworm), and the base image's own.
APT_PROVIDES = {
    "openjdk-17-jre-headless": {"java"},
    "tini": {"tini"},
    "wget": {"wget"},
    "procps": {"ps", "pgrep", "pkill", "top", "free", "kill"},
    "ca-certificates": set(),
}
BASE_IMAGE = {"python", "python3", "pip", "bash", "sh", "/bin/sh", "/bin/bash"}  # python:3.11-slim-bookworm
# Installed by pip with the pins but never pinned themselves: the base image's own packaging tools.
BASE_TOOLS = {"pip", "setuptools", "wheel"}


@pytest.fixture
def profile(monkeypatch: pytest.MonkeyPatch) -> PipelineConfig:
    monkeypatch.delenv("LMFORGE_CONFIG", raising=False)
    return load_config("compose")


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def command_of(service: dict[str, Any]) -> str:
    cmd = service.get("command", "")
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def pins() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            out[canonicalize_name(name.strip())] = version.strip()
    return out


def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text())


def dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG\s+(\w+)=(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE))


def dockerfile_runs() -> list[str]:
    """The shell of each RUN instruction (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [m.group(1) for m in re.finditer(r"^RUN\s+(.*)$", text, flags=re.MULTILINE)]


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script (split at && || ; | and parentheses), as argv lists,
    with leading `VAR=value` assignments dropped."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    out: list[list[str]] = [[]]
    for token in lexer:
        if token in {"&&", "||", ";", "|", "(", ")", ";;"}:
            out.append([])
        else:
            out[-1].append(token)
    commands = []
    for argv in out:
        while argv and re.match(r"^\w+=", argv[0]):
            argv = argv[1:]
        if argv:
            commands.append(argv)
    return commands


def service_commands(service: dict[str, Any]) -> list[list[str]]:
    """Every argv a container of `service` runs: its command (through a `sh -c` / `bash -c`
    entrypoint or command: the script's commands) and its healthcheck's test."""
    entrypoint = service.get("entrypoint")
    command = service.get("command")
    argvs: list[list[str]] = []
    if isinstance(command, str):
        command = shlex.split(command)
    if entrypoint:
        entrypoint = shlex.split(entrypoint) if isinstance(entrypoint, str) else list(entrypoint)
        if entrypoint[-1] == "-c" and command:
            argvs.append(entrypoint[:-1])
            argvs += shell_commands(command[0])
        else:
            argvs.append(entrypoint + list(command or []))
    elif command:
        if command[0] in {"bash", "sh"} and command[1] == "-c":
            argvs.append(command[:1])
            argvs += shell_commands(command[2])
        else:
            argvs.append(list(command))
    argvs += healthcheck_commands(service)
    return argvs


def healthcheck_commands(service: dict[str, Any]) -> list[list[str]]:
    test = (service.get("healthcheck") or {}).get("test")
    if not test:
        return []
    if isinstance(test, str):
        return shell_commands(test)
    if test[0] == "CMD":
        return [list(test[1:])]
    if test[0] == "CMD-SHELL":
        return shell_commands(test[1])
    return []


def volumes_of(service: dict[str, Any]) -> list[str]:
    return [str(v) for v in service.get("volumes") or []]


def code_mounts(service: dict[str, Any]) -> dict[str, str]:
    """{target under /opt/lmforge: the mount's source and mode} of a service."""
    out = {}
    for volume in volumes_of(service):
        source, target, *mode = volume.split(":")
        if target.startswith(CODE_ROOT):
            out[target] = f"{source}:{':'.join(mode)}"
    return out


def dockerfile_code_folders() -> set[str]:
    """The project folders infra/Dockerfile copies into /opt/lmforge."""
    return set(
        re.findall(r"^COPY --chown=\S+ (\w+) /opt/lmforge/\1$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    )


def test_compose_file_matches_the_compose_spec() -> None:
    checker = VENV_BIN / "check-jsonschema"
    assert checker.exists(), f"{checker} missing: it is installed from requirements-dev.txt"
    proc = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_has_every_service_and_no_dangling_dependency(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert "version" not in compose, "the Compose spec dropped the top-level `version` key"
    assert set(services) == SERVICES, f"added or missing: {sorted(set(services) ^ SERVICES)}"
    for name, service in services.items():
        targets = service.get("depends_on") or {}
        missing = set(targets) - set(services)
        assert not missing, f"{name} depends on undefined services {sorted(missing)}"
        assert name not in targets, f"{name} depends on itself"


def test_every_long_running_service_is_health_checked_and_every_dependency_waits_for_it(
    services: dict[str, dict[str, Any]],
) -> None:
    """`docker compose up --wait` and each `depends_on` wait on real readiness: a long-running
    service has a healthcheck, a one-shot one (`restart: "no"`) has to exit 0, and no dependency
    settles for `service_started`."""
    one_shot = {name for name, s in services.items() if str(s.get("restart")) == "no"}
    assert one_shot == ONE_SHOT
    # `up --wait` accepts a one-shot container's exit only when a running service adopts it
    # (depends_on ... service_completed_successfully; docker/compose#10596, #9572)
    for name in one_shot:
        adopters = [
            n for n, s in services.items() if name in (s.get("depends_on") or {}) and n not in one_shot
        ]
        assert [n for n in adopters if not services[n].get("profiles")], f"no running service adopts {name}"
    for name, service in services.items():
        check = service.get("healthcheck")
        if name in one_shot:
            assert check is None, f"{name} exits: a healthcheck on it would never pass"
        else:
            assert check and not check.get("disable"), f"{name} has no healthcheck"
            assert check["test"][0] in {"CMD", "CMD-SHELL"} and len(check["test"]) > 1, name
            assert healthcheck_commands(service), name
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: the short depends_on form means service_started"
        for target, spec in depends_on.items():
            condition = spec.get("condition")
            want = "service_completed_successfully" if target in one_shot else "service_healthy"
            assert condition == want, f"{name} -> {target}: {condition}, want {want}"
    # what the chains above wait for: every user of S3 needs the bucket, Airflow its database
    for name in OURS:
        needs, todo = set(), [name]
        while todo:
            for target in services[todo.pop()].get("depends_on") or {}:
                if target not in needs:
                    needs.add(target)
                    todo.append(target)
        if name in S3_USERS and name != "airflow-init":
            assert "minio-init" in needs, name
        if name.startswith("airflow-") and name != "airflow-init":
            assert {"airflow-init", "postgres"} <= needs, name


def test_profiled_services_are_needed_by_no_default_service(services: dict[str, dict[str, Any]]) -> None:
    profiled = {name for name, s in services.items() if s.get("profiles")}
    assert profiled == {"ray-worker-gpu"}
    for name, service in services.items():
        if name not in profiled:
            needs = set(service.get("depends_on") or {}) & profiled
            assert not needs, f"{name} needs {sorted(needs)}, which plain `docker compose up` never starts"


def test_the_gpu_ray_worker_reserves_nvidia_gpus_and_runs_the_cuda_image(
    services: dict[str, dict[str, Any]],
) -> None:
    gpu, cpu = services["ray-worker-gpu"], services["ray-worker"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert device.get("count") == "all" or int(device.get("count", 0)) >= 1
    assert "utility" in env_of(gpu)["NVIDIA_DRIVER_CAPABILITIES"].split(","), "Ray finds GPUs through NVML"
    # the same Dockerfile with PyTorch's CUDA wheels, under its own tag (one tag for both builds
    # would let whichever builds last replace the other)
    index = gpu["build"]["args"]["TORCH_INDEX_URL"]
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d{3}", index), index
    assert gpu["build"]["dockerfile"] == cpu["build"]["dockerfile"] == "infra/Dockerfile"
    assert "args" not in cpu["build"] and dockerfile_args()["TORCH_INDEX_URL"].endswith("/whl/cpu")
    assert gpu["image"] != cpu["image"]
    images = {s["image"]: s.get("build", {}).get("args", {}) for s in services.values() if "build" in s}
    assert len(images) == 2, f"one image per build: {images}"
    # the CUDA tag the docs give for this image is the one used here
    assert f"--build-arg TORCH_INDEX_URL={index}" in DOCKERFILE.read_text()
    # otherwise the CPU worker: same cluster, same environment and code
    assert gpu["command"] == cpu["command"]
    assert {k: v for k, v in env_of(gpu).items() if not k.startswith("NVIDIA_")} == env_of(cpu)
    assert volumes_of(gpu) == volumes_of(cpu)
    # its healthcheck also proves that torch sees the GPU
    assert any(
        argv[0] == "python" and "torch.cuda.is_available()" in argv[-1] for argv in service_commands(gpu)
    )


def test_images_are_ours_or_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in THIRD_PARTY:
            assert "build" not in service, name
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag ({image})"
        else:
            build = service.get("build") or {}
            assert build.get("dockerfile") == "infra/Dockerfile", f"{name} must build infra/Dockerfile"
            assert (REPO_ROOT / build.get("context", ".") / build["dockerfile"]).is_file()


def test_every_service_of_our_image_mounts_the_same_code_read_only(
    services: dict[str, dict[str, Any]],
) -> None:
    """One rule: the checkout's project folders, read-only over the image's copies, in every
    service built from infra/Dockerfile. DAGs (Airflow), Spark jobs (driver in the scheduler,
    executors in spark-worker) and Ray jobs then always run one version of the code."""
    folders = dockerfile_code_folders()
    packages = {p.rstrip("*") for p in pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= folders, f"the image lacks packages: {sorted(packages - folders)}"
    expected = {f"{CODE_ROOT}/{f}": f"./{f}:ro" for f in folders}
    for folder in folders:
        assert (REPO_ROOT / folder).is_dir(), folder
    for name in OURS:
        assert code_mounts(services[name]) == expected, name
    for name in THIRD_PARTY:
        assert not code_mounts(services[name]), name


def test_airflow_services_use_the_compose_profile_and_spark_default(
    services: dict[str, dict[str, Any]], profile: PipelineConfig
) -> None:
    for name in AIRFLOW:
        env = env_of(services[name])
        assert env.get("LMFORGE_PROFILE") == "compose", name
        assert env.get("AIRFLOW__CORE__LOAD_EXAMPLES") == "False", name
        conn = json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])
        assert conn["conn_type"] == "spark", name
        # The Spark provider builds the master as host:port; it must be the profile's master.
        assert f"{conn['host']}:{conn['port']}" == profile.spark.master, name
        mounts = volumes_of(services[name])
        dags_folder = env["AIRFLOW__CORE__DAGS_FOLDER"]
        assert any(m.startswith("./dags:") and m.split(":")[1] == dags_folder for m in mounts), name


def test_airflow_has_every_component_of_airflow_3(services: dict[str, dict[str, Any]]) -> None:
    commands = {name: services[name]["command"] for name in AIRFLOW if name != "airflow-init"}
    assert sorted(c[1] for c in commands.values()) == [
        "api-server",
        "dag-processor",
        "scheduler",
        "triggerer",
    ]


def test_airflow_init_creates_the_compose_profiles_spark_pool(
    services: dict[str, dict[str, Any]], profile: PipelineConfig
) -> None:
    from orchestration.pools import pool_command

    script = shell_commands(services["airflow-init"]["command"][2])
    pools = [argv for argv in script if argv[:3] == ["airflow", "pools", "set"]]
    assert pools == [pool_command(profile)], f"{pools} != {pool_command(profile)}"
    assert pools[0][3:5] == [profile.spark.pool, str(profile.spark.pool_slots)]
    # after the migration that creates the pool table
    assert [argv[:3] for argv in script].index(["airflow", "db", "migrate"]) < script.index(pools[0])


def test_airflow_commands_are_valid_for_airflows_cli(services: dict[str, dict[str, Any]]) -> None:
    """Every `airflow ...` the stack runs (commands, init script, healthchecks) parses with the
    pinned Airflow's own CLI parser: a wrong subcommand, option or choice fails here."""
    from airflow.cli.cli_parser import get_parser

    parser = get_parser()
    seen = set()
    for name, service in services.items():
        for argv in service_commands(service):
            if argv[0] == "airflow":
                try:
                    parser.parse_args(argv[1:])
                except SystemExit as err:
                    pytest.fail(f"{name}: `{shlex.join(argv)}` is not a valid airflow command ({err})")
                seen.add(" ".join(argv[1:3]))
    assert {"db migrate", "pools set", "jobs check", "scheduler", "triggerer", "dag-processor"} <= seen


def test_ray_commands_are_valid_for_rays_cli(services: dict[str, dict[str, Any]]) -> None:
    import click
    from ray.scripts.scripts import cli

    checked = 0
    for name, service in services.items():
        for argv in service_commands(service):
            if argv[0] == "ray":
                sub = cli.get_command(click.Context(cli), argv[1])
                assert sub is not None, f"{name}: no `ray {argv[1]}`"
                try:
                    sub.make_context(argv[1], list(argv[2:]))
                except click.ClickException as err:
                    pytest.fail(f"{name}: `{shlex.join(argv)}`: {err.format_message()}")
                checked += 1
    assert checked == 3  # the head and the two workers


def console_scripts(names: set[str]) -> dict[str, str]:
    """{script: distribution} of the installed distributions among `names`."""
    out: dict[str, str] = {}
    for dist in metadata.distributions():
        dist_name = canonicalize_name(dist.metadata["Name"])
        if dist_name in names:
            for ep in dist.entry_points.select(group="console_scripts"):
                out[ep.name] = dist_name
    return out


def pyspark_bin_scripts() -> set[str]:
    """What pip puts on PATH from pyspark's bin folder (spark-class, spark-submit, ...)."""
    files = metadata.distribution("pyspark").files or []
    return {f.name for f in files if f.parent.as_posix().endswith("../bin") and not f.name.endswith(".cmd")}


def dockerfile_apt_packages() -> set[str]:
    for run in dockerfile_runs():
        if m := re.search(r"apt-get install -y --no-install-recommends ((?:[\w.+-]+ ?)+)", run):
            return set(m.group(1).split())
    raise AssertionError("infra/Dockerfile installs no apt package")


def test_every_command_a_service_runs_exists_in_its_image(services: dict[str, dict[str, Any]]) -> None:
    """Our image: each executable is a console script of a distribution requirements.txt pins, a
    script of pyspark's bin folder, from the Dockerfile's apt packages or the base image (python
    only as `python -c <code that compiles>`). Third-party images: what THIRD_PARTY_SHIPS lists."""
    apt = dockerfile_apt_packages()
    assert apt <= set(APT_PROVIDES), f"document what {sorted(apt - set(APT_PROVIDES))} provide"
    scripts = console_scripts(set(pins()))
    spark_bin = pyspark_bin_scripts()
    assert {"spark-class", "spark-submit"} <= spark_bin
    ours = set(scripts) | spark_bin | BASE_IMAGE | {b for p in apt for b in APT_PROVIDES[p]}
    used: dict[str, str] = {}
    for name, service in services.items():
        argvs = service_commands(service)
        assert argvs, name
        if name in THIRD_PARTY:
            repo = service["image"].rsplit(":", 1)[0]
            ships = THIRD_PARTY_SHIPS[repo]
            if not service.get("entrypoint"):  # `command` is the arguments of the image's entrypoint
                argvs = (
                    [[THIRD_PARTY_ENTRYPOINT[repo], *argvs[0]], *argvs[1:]] if "command" in service else argvs
                )
            for argv in argvs:
                assert argv[0] in ships, f"{name}: {repo} ships no {argv[0]!r}"
            continue
        for argv in argvs:
            exe = argv[0]
            assert exe in ours, f"{name}: {exe!r} is in no package of the image"
            if exe in {"python", "python3"}:
                assert argv[1] == "-c", f"{name}: python runs code given inline only: {argv}"
                compile(argv[2], f"<{name}>", "exec")
            used[exe] = scripts.get(exe, "image")
    # the check saw the stack's real entry points
    assert used["airflow"] == "apache-airflow-core" and used["ray"] == "ray"
    assert used["tensorboard"] == "tensorboard" and "spark-class" in used and "wget" in used


def runtime_closure(roots: list[Requirement]) -> dict[str, str]:
    """{distribution: who requires it} for `roots` and their dependencies, transitively, from the
    installed distributions' metadata (markers evaluated here: Python 3.11 on Linux, as the
    image). A root that is not installed here (the image-only Postgres drivers) is a leaf."""
    seen: dict[str, str] = {}
    done: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras), "<root>") for r in roots]
    while todo:
        name, extras, by = todo.pop()
        seen.setdefault(name, by)
        if (name, extras) in done:
            continue
        done.add((name, extras))
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        envs = [{"extra": e} for e in extras] or [{"extra": ""}]
        for text in requires:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((canonicalize_name(req.name), frozenset(req.extras), name))
    return seen


def pip_installs() -> list[list[str]]:
    """The arguments of each `pip install` in infra/Dockerfile, its ARGs' defaults substituted."""
    args = dockerfile_args()
    out = []
    for run in dockerfile_runs():
        for argv in shell_commands(run):
            if argv[:2] == ["pip", "install"]:
                out.append([re.sub(r"\$\{(\w+)\}", lambda v: args[v.group(1)], w) for w in argv[2:]])
    return out


def image_installs() -> list[Requirement]:
    """The packages infra/Dockerfile's pip commands name besides the requirements files."""
    out = []
    for words in pip_installs():
        for i, word in enumerate(words):
            options_with_value = {"-r", "-c", "--index-url"}
            if not word.startswith("-") and (i == 0 or words[i - 1] not in options_with_value):
                out.append(Requirement(word))
    return out


def test_the_image_installs_the_runtime_pins_and_no_dev_tool() -> None:
    text, req = DOCKERFILE.read_text(), pins()
    # requirements.txt is the only requirements file the image sees or installs
    assert re.findall(r"^COPY\s.*requirements[\w-]*\.txt.*$", text, flags=re.MULTILINE) == [
        "COPY requirements.txt /tmp/requirements.txt",
        "COPY --chown=50000:0 pyproject.toml requirements.txt /opt/lmforge/",
    ]
    files = [w[i + 1] for w in pip_installs() for i, opt in enumerate(w) if opt in {"-r", "-c"}]
    assert files == ["/tmp/requirements.txt", "/tmp/requirements.txt"], files
    instructions = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "requirements-dev" not in instructions and ".[dev]" not in instructions
    # every other package it installs is pinned, by requirements.txt or by an ARG of its own
    extras = image_installs()
    for r in extras:
        (spec,) = r.specifier
        assert spec.operator == "==", r
        name = canonicalize_name(r.name)
        assert name not in req or req[name] == spec.version, f"{r} differs from requirements.txt"
    project = pyproject()["project"]
    ray = next(Requirement(r) for r in project["dependencies"] if r.startswith("ray["))
    assert any(r.name == "ray" and r.extras == ray.extras for r in extras), "ray with pyproject's extras"
    nvml = Requirement(project["optional-dependencies"]["gpu"][0])
    assert any(str(r) == str(nvml) for r in extras), "the GPU image gets pyproject's `gpu` extra"
    # so everything that lands in the image is a pin, or a base-image tool
    installed = runtime_closure([Requirement(f"{n}=={v}") for n, v in req.items()] + extras)
    stray = {n: by for n, by in installed.items() if n not in req and n not in BASE_TOOLS}
    assert set(stray) <= {canonicalize_name(r.name) for r in extras}, f"unpinned, pulled in by: {stray}"
    # and no dev tool is among it, directly or as a dependency
    dev = {canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["dev"]}
    assert dev >= {"pytest", "ruff", "mypy", "moto", "playwright", "check-jsonschema"}
    assert not dev & set(req), f"dev tools in requirements.txt: {sorted(dev & set(req))}"
    assert not dev & set(installed), {n: installed[n] for n in dev & set(installed)}
    # requirements.txt holds nothing the runtime does not need (a dev tool's own dependencies
    # left behind would be installed in the image too)
    runtime = runtime_closure([Requirement(r) for r in project["dependencies"]])
    orphans = sorted(set(req) - set(runtime))
    assert not orphans, f"pinned in requirements.txt, needed by no runtime dependency: {orphans}"


def test_minio_endpoint_and_bucket_match_the_compose_profile(
    services: dict[str, dict[str, Any]], profile: PipelineConfig
) -> None:
    endpoint = urlsplit(profile.storage.endpoint_url or "")
    bucket = urlsplit(profile.storage.root).netloc
    assert endpoint.hostname in services, f"no service named {endpoint.hostname!r}"
    minio = services[endpoint.hostname]
    assert "server" in command_of(minio)
    assert endpoint.port == 9000, "MinIO's S3 API listens on 9000"
    assert bucket and f"local/{bucket}" in command_of(services["minio-init"])
    assert set(services["minio-init"]["depends_on"]) == {endpoint.hostname}
    for name in S3_USERS:
        env = env_of(services[name])
        assert env.get("AWS_ENDPOINT_URL") == profile.storage.endpoint_url, name
        assert env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"), name
    user = env_of(minio)["MINIO_ROOT_USER"]
    assert all(env_of(services[n])["AWS_ACCESS_KEY_ID"] == user for n in S3_USERS)


def test_spark_and_ray_services_match_the_compose_profile(
    services: dict[str, dict[str, Any]], profile: PipelineConfig
) -> None:
    spark = urlsplit(profile.spark.master)
    assert spark.hostname in services
    master = command_of(services[spark.hostname])
    assert "org.apache.spark.deploy.master.Master" in master and f"--port {spark.port}" in master
    assert f"org.apache.spark.deploy.worker.Worker {profile.spark.master}" in command_of(
        services["spark-worker"]
    )
    ray = urlsplit(profile.ray.address or "")
    assert ray.hostname in services
    head = command_of(services[ray.hostname])
    assert "--head" in head and f"--ray-client-server-port {ray.port}" in head
    for worker in ("ray-worker", "ray-worker-gpu"):
        assert f"--address {ray.hostname}:6379" in command_of(services[worker])


def test_healthchecks_call_the_ports_the_services_listen_on(services: dict[str, dict[str, Any]]) -> None:
    """Each HTTP healthcheck asks the port its service's command (or the software's default) opens;
    Ray's health endpoints are public under token authentication (the pinned Ray's list)."""
    from ray._private import ray_constants
    from ray.dashboard import http_server_head

    def ports(name: str) -> set[int]:
        found = set()
        for argv in healthcheck_commands(services[name]):
            found |= {int(p) for p in re.findall(r"http://localhost:(\d+)", " ".join(argv))}
        return found

    assert ports("airflow-apiserver") == {8080} and "--port 8080" in command_of(services["airflow-apiserver"])
    assert ports("airflow-scheduler") == {8974}  # [scheduler] scheduler_health_check_server_port
    assert ports("spark-master") == {8080} and "--webui-port 8080" in command_of(services["spark-master"])
    assert ports("spark-worker") == {8082} and "--webui-port 8082" in command_of(services["spark-worker"])
    assert ports("tensorboard") == {6006} and "--port 6006" in command_of(services["tensorboard"])
    assert ports("ray-head") == {ray_constants.DEFAULT_DASHBOARD_PORT}
    for worker in ("ray-worker", "ray-worker-gpu"):
        assert ports(worker) == {ray_constants.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT}, worker
    source = Path(http_server_head.__file__).read_text()
    public = re.search(r"public_exact_paths = \{(.*?)\}", source, flags=re.DOTALL)
    assert public, "the pinned Ray no longer lists its public paths where this test looks"
    for name in ("ray-head", "ray-worker", "ray-worker-gpu"):
        for argv in healthcheck_commands(services[name]):
            for path in re.findall(r"http://localhost:\d+(/\S*)", " ".join(argv)):
                assert f'"{path}"' in public.group(1), f"{name}: {path} needs the Ray token"


def test_ray_healthchecks_pass_on_a_token_protected_node(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real Ray head with token authentication (tests/ray_head.py), as ray-head runs: the
    ray-head and ray-worker healthchecks themselves (wget, the image's apt package, installed
    here too), their ports mapped to this node's, pass without the token, while the Jobs API
    refuses the same anonymous client."""
    import tests.ray_head as ray_head_module

    if shutil.which("wget") is None:
        pytest.skip("no wget here to run the healthchecks with")
    picked: list[list[int]] = []
    free_ports = ray_head_module._free_ports

    def recording(n: int) -> list[int]:
        picked.append(free_ports(n))
        return picked[-1]

    monkeypatch.setattr(ray_head_module, "_free_ports", recording)
    with ray_head_module.ray_head(token_auth=True) as head:
        ports = picked[-1]
        # tests/ray_head.py's order: gcs, dashboard, client, node manager, objects, metrics, agent http
        assert head.dashboard.endswith(f":{ports[1]}")
        mapping = {8265: ports[1], 52365: ports[6]}
        for name in ("ray-head", "ray-worker"):
            (argv,) = healthcheck_commands(services[name])
            argv = [
                re.sub(r"localhost:(\d+)", lambda m: f"127.0.0.1:{mapping[int(m.group(1))]}", a) for a in argv
            ]
            # the dashboard agent comes up seconds after the dashboard: retried, as Docker does
            deadline = time.monotonic() + 60
            while (done := subprocess.run(argv, capture_output=True, text=True, timeout=30)).returncode:
                assert time.monotonic() < deadline, f"{name}: {shlex.join(argv)}: rc {done.returncode}"
                time.sleep(1)
        assert requests.get(f"{head.dashboard}/api/jobs/", timeout=10).status_code in {401, 403}
        assert requests.get(f"{head.dashboard}/api/jobs/", headers=head.headers, timeout=10).ok


def _health(service: dict[str, Any], ports: dict[int, int]) -> int:
    """Run a `CMD python -c` healthcheck here, its localhost ports mapped by `ports`."""
    (argv,) = healthcheck_commands(service)
    assert argv[:2] == ["python", "-c"], argv
    code = re.sub(r"localhost:(\d+)", lambda m: f"127.0.0.1:{ports[int(m.group(1))]}", argv[2])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """spark-class runs java as its child: signal the session this test started, by its id."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _until(check: Any, timeout_s: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"{p.name}: {p.read_text()[-1500:]}" for p in logs)
            pytest.fail(f"{what} within {timeout_s:.0f} s\n{tails}")
        time.sleep(1)


def test_spark_healthchecks_pass_once_the_worker_registered(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The spark-master and spark-worker commands, run here with free ports: the worker's
    healthcheck fails while it has no master (so spark-worker is not healthy before it can take
    executors), and both pass once the master is up and the worker registered."""
    master_svc, worker_svc = services["spark-master"], services["spark-worker"]
    rpc, master_ui, worker_ui = (_free_port() for _ in range(3))
    master = list(master_svc["command"])
    master[master.index("--host") + 1] = "127.0.0.1"
    master[master.index("--port") + 1] = str(rpc)
    master[master.index("--webui-port") + 1] = str(master_ui)
    worker = [f"spark://127.0.0.1:{rpc}" if a.startswith("spark://") else a for a in worker_svc["command"]]
    worker[worker.index("--webui-port") + 1] = str(worker_ui)
    worker[worker.index("--work-dir") + 1] = str(tmp_path / "work")
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_WORKER_CORES": "1",
        "SPARK_WORKER_MEMORY": "512m",
        "SPARK_LOG_DIR": str(tmp_path),
    }
    ports = {8080: master_ui, 8082: worker_ui}
    logs = [tmp_path / "worker.log", tmp_path / "master.log"]

    def answers(port: int) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/json/", timeout=5).ok
        except requests.ConnectionError:
            return False

    worker_proc = _start([str(VENV_BIN / worker[0]), *worker[1:]], env, logs[0])
    master_proc = None
    try:
        _until(lambda: answers(worker_ui), 90, "the worker's web UI did not answer", logs)
        assert _health(worker_svc, ports) != 0, "a worker without a master passed its healthcheck"
        master_proc = _start([str(VENV_BIN / master[0]), *master[1:]], env, logs[1])
        _until(lambda: _health(master_svc, ports) == 0, 90, "spark-master's healthcheck did not pass", logs)
        _until(lambda: _health(worker_svc, ports) == 0, 90, "spark-worker's healthcheck did not pass", logs)
        state = requests.get(f"http://127.0.0.1:{master_ui}/json/", timeout=5).json()
        assert state["aliveworkers"] == 1, state
    finally:
        for proc in (worker_proc, master_proc):
            if proc is not None:
                _stop_group(proc)


def test_tensorboard_reads_where_the_pretrain_writes(
    services: dict[str, dict[str, Any]], profile: PipelineConfig
) -> None:
    from core.storage import open_storage
    from training.tracking import TENSORBOARD_PREFIX

    service = services["tensorboard"]
    argv = service["command"]
    assert argv[argv.index("--logdir") + 1] == open_storage(profile.storage).uri(TENSORBOARD_PREFIX)
    assert argv[argv.index("--load_fast") + 1] == "false", "the Rust loader reads local folders only"
    env = env_of(service)
    assert env["S3_ENDPOINT"] == env["AWS_ENDPOINT_URL"] == profile.storage.endpoint_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tensorboard_bucket(s3_endpoint: str, profile: PipelineConfig) -> Iterator[str]:
    """The compose profile's bucket on the loopback S3 server."""
    import boto3

    bucket = urlsplit(profile.storage.root).netloc
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    yield bucket


def test_tensorboard_service_shows_a_run_the_tracker_uploaded_to_s3(
    services: dict[str, dict[str, Any]],
    profile: PipelineConfig,
    s3_endpoint: str,
    tensorboard_bucket: str,
    tmp_path: Path,
) -> None:
    """training/tracking.py's Tracker writes a run to the compose profile's storage (a real S3
    server here, MinIO there); the tensorboard service's own command, with its environment (the
    endpoint pointed at this server), serves that run's loss curve and passes its healthcheck."""
    from core.storage import open_storage
    from training.tracking import Tracker

    storage = open_storage(load_config("compose", {"storage": {"endpoint_url": s3_endpoint}}).storage)
    tracker = Tracker.for_run(storage, "run-a", enabled=True)
    losses = {1: 9.5, 2: 7.25, 3: 6.0}
    for step, loss in losses.items():
        tracker.log(step, {"loss": loss, "step": step})
    tracker.close()
    assert any(k.startswith("tensorboard/run-a/events.out.tfevents") for k in storage.list("tensorboard"))

    service = services["tensorboard"]
    port = _free_port()
    argv = list(service["command"])
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    env = dict(os.environ)  # the fixture's dummy credentials for ${MINIO_ROOT_*}
    for key, value in env_of(service).items():
        if "${" in value:
            continue
        env[key] = s3_endpoint if value == profile.storage.endpoint_url else value
    env.pop("PYTHONPATH", None)  # /opt/lmforge in the image
    env["TMPDIR"] = str(tmp_path)  # /scratch in the image
    log = tmp_path / "tensorboard.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / argv[0]), *argv[1:]], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        health_url = re.search(r"'http://localhost:6006(/[^']*)'", " ".join(healthcheck_commands(service)[0]))
        assert health_url
        scalars: list[list[float]] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                assert requests.get(base + health_url.group(1), timeout=5).ok
                tags = requests.get(f"{base}/data/plugin/scalars/tags", timeout=5).json()
                if "loss" in tags.get("run-a", {}):
                    scalars = requests.get(
                        f"{base}/data/plugin/scalars/scalars",
                        params={"run": "run-a", "tag": "loss"},
                        timeout=5,
                    ).json()
                    break
            except requests.ConnectionError:
                pass
            time.sleep(1)
        assert scalars, f"TensorBoard showed no run-a/loss: {log.read_text()[-3000:]}"
        assert {int(step): value for _, step, value in scalars} == losses
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_image_holds_every_package_of_the_project() -> None:
    """The image runs DAGs, spark-submit and Ray jobs: every package they import must be in it."""
    text = DOCKERFILE.read_text()
    for package in ("core", "jobs", "training", "orchestration", "lmforge", "dags"):
        assert f"COPY --chown=50000:0 {package} /opt/lmforge/{package}" in text, package


def test_dockerfile_pins_follow_requirements() -> None:
    args, req, text = dockerfile_args(), pins(), DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm\b", text, flags=re.MULTILINE)
    assert args["TORCH_VERSION"] == req["torch"]
    assert "torch==${TORCH_VERSION}" in text
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert args["PYSPARK_VERSION"] == req["pyspark"]
    assert args["RAY_VERSION"] == req["ray"]
    assert "openjdk-17-jre-headless" in text
    assert "PYTHONPATH=/opt/lmforge" in text
    assert re.search(r"^USER\s+(?!root\b|0\b)\S+", text, flags=re.MULTILINE), "the image must not run as root"


def test_the_dockerfile_fails_a_build_whose_torch_is_not_the_index_build() -> None:
    """The RUN's own check, executed here against this venv's torch (the CPU build): it passes for
    the CPU index and fails for a CUDA index, so a GPU image cannot silently ship CPU torch."""
    run = next(r for r in dockerfile_runs() if "torch.version.cuda" in r)
    (code,) = [argv[2] for argv in shell_commands(run) if argv[:2] == ["python", "-c"] and "torch" in argv[2]]
    torch = pytest.importorskip("torch")
    assert torch.version.cuda is None, "this test expects the CPU torch of requirements.txt's venv"
    results = {}
    for index in ("https://download.pytorch.org/whl/cpu", "https://download.pytorch.org/whl/cu130"):
        script = code.replace("${TORCH_INDEX_URL}", index)
        results[index] = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
    assert results["https://download.pytorch.org/whl/cpu"].returncode == 0
    failed = results["https://download.pytorch.org/whl/cu130"]
    assert failed.returncode == 1 and "is not the build of" in failed.stderr


def test_hadoop_aws_matches_the_hadoop_pyspark_bundles() -> None:
    """The S3A jar must be built for the same Hadoop as pyspark's hadoop-client jars."""
    pyspark = pytest.importorskip("pyspark")
    jars = Path(pyspark.__file__).parent / "jars"
    bundled = {
        p.name.removeprefix("hadoop-client-api-").removesuffix(".jar")
        for p in jars.glob("hadoop-client-api-*.jar")
    }
    assert bundled == {dockerfile_args()["HADOOP_VERSION"]}
