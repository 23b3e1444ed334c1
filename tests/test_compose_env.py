"""scripts/compose_env.py: the `.env` that `make up` writes when there is none. Run on the real
.env.example and docker-compose.yml: every variable Compose requires gets a fresh value of the
kind its consumer accepts, the file is private, and an existing .env is never touched."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from cryptography.fernet import Fernet

from core.config import REPO_ROOT
from scripts.compose_env import EXAMPLE, EnvError, ensure_env, generators, main, read_env

COMPOSE = REPO_ROOT / "docker-compose.yml"
# ${VAR:?message}: what Compose refuses to start without
REQUIRED = re.compile(r"\$\{(\w+):\?")


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """umask 0: the file must still come out 0600."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def compose_required() -> set[str]:
    """The `${VAR:?}` variables of docker-compose.yml's values (comments excluded)."""
    found: set[str] = set()
    todo: list[Any] = [yaml.safe_load(COMPOSE.read_text())]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            todo += [*node.keys(), *node.values()]
        elif isinstance(node, list):
            todo += node
        elif isinstance(node, str):
            found |= set(REQUIRED.findall(node))
    return found


def example_variables() -> list[str]:
    return [m.group(1) for line in EXAMPLE.read_text().splitlines() if (m := re.match(r"^(\w+)=", line))]


def test_writes_every_variable_compose_requires_privately(tmp_path: Path, loose_umask: None) -> None:
    env_file = tmp_path / ".env"
    assert ensure_env(env_file) is True
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = read_env(env_file.read_text())
    assert list(values) == example_variables()
    assert set(values) == compose_required(), "the .env must satisfy Compose"
    assert all(values.values()) and not any(v.startswith("change-me") for v in values.values())
    assert len(set(values.values())) == len(values), "every secret is its own"
    # no character Compose would interpolate or a shell / URL would need quoted
    assert all(re.fullmatch(r"[A-Za-z0-9_=-]+", v) for v in values.values()), values


def test_each_value_is_what_its_consumer_accepts(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    ensure_env(env_file)
    values = read_env(env_file.read_text())
    # the sizes .env.example's generators give (`openssl rand -hex N`: 2N hex digits)
    documented = {
        name: int(n) for n, name in re.findall(r"openssl rand -hex (\d+)\n(\w+)=", EXAMPLE.read_text())
    }
    assert len(documented) >= 5, documented
    for name, nbytes in documented.items():
        assert re.fullmatch(rf"[0-9a-f]{{{2 * nbytes}}}", values[name]), (name, values[name])
    # Airflow's Fernet key: cryptography must accept it and it must round-trip
    fernet = Fernet(values["AIRFLOW_FERNET_KEY"].encode())
    assert fernet.decrypt(fernet.encrypt(b"conn password")) == b"conn password"
    # MinIO: user >= 3, password >= 8 characters; both go into mc's MC_HOST_local URL unescaped
    user, password = values["MINIO_ROOT_USER"], values["MINIO_ROOT_PASSWORD"]
    assert len(user) >= 3 and len(password) >= 8
    url = urlsplit(f"http://{user}:{password}@minio:9000")
    assert (url.username, url.password, url.hostname, url.port) == (user, password, "minio", 9000)
    # Ray's token has the format of `ray get-auth-token --generate` (64 hex digits)
    assert re.fullmatch(r"[0-9a-f]{64}", values["RAY_AUTH_TOKEN"])


def test_two_runs_generate_different_secrets(tmp_path: Path) -> None:
    ensure_env(tmp_path / "a.env")
    ensure_env(tmp_path / "b.env")
    a, b = read_env((tmp_path / "a.env").read_text()), read_env((tmp_path / "b.env").read_text())
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)


def test_an_existing_env_is_never_overwritten(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    ensure_env(env_file)
    before = env_file.read_bytes()
    custom = before.replace(b"\nPOSTGRES_PASSWORD=", b"\n# mine\nPOSTGRES_PASSWORD=my")
    env_file.write_bytes(custom)
    assert ensure_env(env_file) is False
    assert env_file.read_bytes() == custom
    assert main(["--env-file", str(env_file)]) == 0
    assert env_file.read_bytes() == custom


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda text: re.sub(r"^RAY_AUTH_TOKEN=.*\n", "", text, flags=re.MULTILINE), "RAY_AUTH_TOKEN"),
        (
            lambda text: re.sub(r"^(AIRFLOW_JWT_SECRET)=.*$", r"\1=", text, flags=re.MULTILINE),
            "AIRFLOW_JWT_SECRET",
        ),
        (lambda text: text + "POSTGRES_PASSWORD=change-me-postgres-password\n", "POSTGRES_PASSWORD"),
    ],
    ids=["missing", "empty", "placeholder"],
)
def test_an_incomplete_existing_env_fails_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Callable[[str], str], named: str
) -> None:
    env_file = tmp_path / ".env"
    ensure_env(env_file)
    broken = edit(env_file.read_text())
    env_file.write_text(broken)
    with pytest.raises(EnvError, match=named):
        ensure_env(env_file)
    assert main(["--env-file", str(env_file)]) == 1
    assert named in capsys.readouterr().err
    assert env_file.read_text() == broken


def test_a_variable_without_a_documented_generator_is_refused(tmp_path: Path) -> None:
    example = tmp_path / "example"
    example.write_text(EXAMPLE.read_text() + "\n# A new secret, no generator named\nNEW_SECRET=change-me\n")
    with pytest.raises(EnvError, match="NEW_SECRET"):
        ensure_env(tmp_path / ".env", example)
    assert not (tmp_path / ".env").exists()
    # a documented one is filled in
    example.write_text(EXAMPLE.read_text() + "\n# A new secret:  openssl rand -hex 4\nNEW_SECRET=change-me\n")
    assert set(generators(example.read_text())) == {*example_variables(), "NEW_SECRET"}
    ensure_env(tmp_path / ".env", example)
    assert re.fullmatch(r"[0-9a-f]{8}", read_env((tmp_path / ".env").read_text())["NEW_SECRET"])


def test_the_module_runs_as_make_up_calls_it(tmp_path: Path) -> None:
    """`python3 -m scripts.compose_env` from the repository root, with the standard library only
    (`-S`: no site-packages, so no venv): `make up` must not need the project installed."""
    env_file = tmp_path / ".env"
    cmd = [sys.executable, "-S", "-m", "scripts.compose_env", "--env-file", str(env_file)]
    run_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    first = subprocess.run(cmd, cwd=REPO_ROOT, env=run_env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "wrote" in first.stdout and stat.S_IMODE(env_file.stat().st_mode) == 0o600
    written = env_file.read_text()
    second = subprocess.run(cmd, cwd=REPO_ROOT, env=run_env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and "kept" in second.stdout
    assert env_file.read_text() == written
