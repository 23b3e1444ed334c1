"""Prerequisite checks: version parsing, and real `java -version` subprocesses (fake scripts and the
machine's own Java)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from core import prereqs
from core.prereqs import (
    JavaCheckError,
    check_prereqs,
    java_ok,
    java_version,
    locate_java,
    parse_java_version,
    python_ok,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('openjdk version "17.0.12" 2024-07-16\nOpenJDK Runtime Environment (build 17.0.12)\n', (17, 0, 12)),
        ('java version "1.8.0_402"\nJava(TM) SE Runtime Environment (build 1.8.0_402-b06)\n', (8, 0)),
        ('openjdk version "21" 2023-09-19\n', (21,)),
        ('Picked up JAVA_TOOL_OPTIONS: -Xmx1g\nopenjdk version "11.0.2" 2019-01-15\n', (11, 0, 2)),
        ('openjdk version "22-ea" 2024-03-19\n', (22,)),
        ("garbage\n", None),
        ("", None),
        ('openjdk version "" 2024\n', None),
        ('java version "abc"\n', None),
    ],
)
def test_parse_java_version(text: str, expected: tuple[int, ...] | None) -> None:
    assert parse_java_version(text) == expected


def fake_java(tmp_path: Path, body: str) -> Path:
    """An executable `java` that runs `body` under /bin/sh, as a real subprocess would."""
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\n{body}\n")
    java.chmod(0o755)
    return java


def test_java_8_is_refused_naming_the_version(tmp_path: Path) -> None:
    java = fake_java(tmp_path, "echo 'java version \"1.8.0_402\"' >&2")
    assert java_version(java) == (8, 0)
    message = java_ok(java)
    assert message is not None
    assert "1.8.0_402" in message and "Java 8" in message
    assert "17" in message and "openjdk-17" in message and "JAVA_HOME" in message
    assert str(java) in message


def test_java_17_passes(tmp_path: Path) -> None:
    java = fake_java(tmp_path, "echo 'openjdk version \"17.0.12\" 2024-07-16' >&2")
    assert java_version(java) == (17, 0, 12)
    assert java_ok(java) is None


def test_hanging_java_times_out_with_a_clear_message(tmp_path: Path) -> None:
    java = fake_java(tmp_path, "sleep 30 & wait")  # the sleep holds the pipe open too
    started = time.monotonic()
    with pytest.raises(JavaCheckError, match="did not finish within 1 s"):
        java_version(java, timeout=1)
    message = java_ok(java, timeout=1)
    assert time.monotonic() - started < 10
    assert message is not None and "did not finish within 1 s" in message and "JAVA_HOME" in message


def test_failing_and_silent_java(tmp_path: Path) -> None:
    failing = fake_java(tmp_path, "echo 'Error: could not create the VM' >&2; exit 1")
    message = java_ok(failing)
    assert message is not None and "exit 1" in message and "could not create the VM" in message
    silent = tmp_path / "silent"
    silent.mkdir()
    assert "cannot tell the Java version" in (java_ok(fake_java(silent, "true")) or "")


def test_output_is_bounded(tmp_path: Path) -> None:
    java = fake_java(tmp_path, "echo 'openjdk version \"21\" 2023-09-19' >&2; head -c 2000000 /dev/zero")
    assert java_version(java) == (21,)


def test_not_executable(tmp_path: Path) -> None:
    with pytest.raises(JavaCheckError, match="cannot run"):
        java_version(tmp_path / "nowhere" / "java")


@pytest.mark.skipif(shutil.which("java") is None, reason="no java on this machine")
def test_real_java_passes() -> None:
    java, _ = locate_java()
    assert java is not None
    version = java_version(java)
    assert version is not None and version[0] >= 17
    assert java_ok(java) is None
    assert check_prereqs() == []


def test_python_versions() -> None:
    message = python_ok((3, 10, 0))
    assert message is not None and "Python 3.10" in message and "3.11" in message
    assert python_ok((3, 11, 0)) is None
    assert python_ok((3, 13, 1, "final", 0)) is None
    assert python_ok() is None  # this interpreter


def test_check_prereqs_reports_missing_and_old_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    missing = f"Java not found (JAVA_HOME={str(tmp_path / 'no-java')!r}): Spark needs a Java 17+ runtime"
    assert check_prereqs() == [f"{missing}; {prereqs.JAVA_FIX}"]
    java = fake_java(tmp_path, "echo 'java version \"1.8.0_402\"' >&2")
    monkeypatch.setenv("JAVA_HOME", str(java.parents[1]))
    [problem] = check_prereqs()
    assert "Java 8" in problem


def test_find_java_raises_a_java_missing_error_for_old_java(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs.spark.session import JavaMissingError, JavaVersionError, find_java

    java = fake_java(tmp_path, "echo 'java version \"1.8.0_402\"' >&2")
    monkeypatch.setenv("JAVA_HOME", str(java.parents[1]))
    with pytest.raises(JavaVersionError, match=r"1\.8\.0_402.*Java 8") as caught:
        find_java()
    assert isinstance(caught.value, JavaMissingError)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "none"))
    with pytest.raises(JavaMissingError, match=r"Java not found \(JAVA_HOME="):
        find_java()
