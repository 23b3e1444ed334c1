"""Prerequisites checked up front, each with a message that says what was found and how to fix it.

Python >= 3.11 (the project's `requires-python`) and Java >= 17 by version number: PySpark 4
"requires Java 17 or later with JAVA_HOME properly set" (PySpark 4.0 installation guide,
https://spark.apache.org/docs/4.0.0/api/python/getting_started/install.html, section Dependencies).
An older JVM otherwise fails deep inside Py4J with UnsupportedClassVersionError.

Stdlib only: this runs before anything heavy is imported.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

MIN_PYTHON = (3, 11)
MIN_JAVA = 17
JAVA_TIMEOUT_S = 10.0
_OUTPUT_LIMIT = 64 * 1024  # `java -version` prints three short lines; anything past this is dropped
JAVA_FIX = (
    "install openjdk-17 (e.g. `apt-get install openjdk-17-jre-headless`) "
    "or set JAVA_HOME to a Java 17+ installation"
)

# `openjdk version "17.0.12" 2024-07-16`, `java version "1.8.0_402"`, `openjdk version "21" 2023-09-19`
_VERSION_RE = re.compile(r'version\s+"([^"]*)"')


class JavaCheckError(RuntimeError):
    """`java -version` could not be run to completion (not executable, hung, or failed)."""


def python_ok(version_info: Sequence[int | str] = sys.version_info) -> str | None:
    """An error message when the interpreter is older than MIN_PYTHON, else None."""
    found = (int(version_info[0]), int(version_info[1]))
    if found >= MIN_PYTHON:
        return None
    want = ".".join(map(str, MIN_PYTHON))
    return (
        f"Python {found[0]}.{found[1]} ({sys.executable}) is too old: lmforge needs Python {want}+; "
        f"create the venv with python{want} or newer"
    )


def _raw_version(text: str) -> str | None:
    match = _VERSION_RE.search(text)
    return match.group(1) if match else None


def parse_java_version(text: str) -> tuple[int, ...] | None:
    """The Java version in `java -version` output as numbers, with the legacy "1.x" scheme
    folded: "1.8.0_402" -> (8, 0), "17.0.12" -> (17, 0, 12), "21" -> (21,). None if absent."""
    raw = _raw_version(text)
    if raw is None:
        return None
    # The numeric dotted head; "_402" (legacy update), "-ea", "+13" and the like are dropped.
    head = re.match(r"\d+(?:\.\d+)*", raw)
    if head is None:
        return None
    numbers = tuple(int(part) for part in head.group(0).split("."))
    if numbers[0] == 1 and len(numbers) > 1:  # Java 8 and older: 1.8.0 means 8
        numbers = numbers[1:]
    return numbers


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the session `proc` leads (it and what it started), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _version_output(java: Path, timeout: float) -> str:
    """stdout + stderr of `java -version` (it prints to stderr), at most _OUTPUT_LIMIT bytes.
    Run directly (no shell) in its own session, so a timeout kills it and anything it started."""
    try:
        proc = subprocess.Popen(
            [str(java), "-version"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as e:
        raise JavaCheckError(f"cannot run {java} -version: {e}") from e
    assert proc.stdout is not None
    kept = bytearray()
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    _kill(proc)
                    raise JavaCheckError(
                        f"{java} -version did not finish within {timeout:g} s; "
                        "check that it is a working Java runtime"
                    )
                if not sel.select(left):
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                kept += chunk[: max(0, _OUTPUT_LIMIT - len(kept))]  # keep reading so it never blocks
        finally:
            proc.stdout.close()
    try:
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise JavaCheckError(f"{java} -version did not exit within {timeout:g} s") from None
    text = kept.decode("utf-8", "replace")
    if code != 0:
        raise JavaCheckError(f"{java} -version failed (exit {code}): {text.strip()[:200]!r}")
    return text


def java_version(java: Path, timeout: float = JAVA_TIMEOUT_S) -> tuple[int, ...] | None:
    """The version `java -version` reports (see parse_java_version); None when the output names
    none. Raises JavaCheckError when it cannot be run, fails, or runs past `timeout`."""
    return parse_java_version(_version_output(java, timeout))


def java_ok(java: Path, timeout: float = JAVA_TIMEOUT_S) -> str | None:
    """An error message naming what was found and how to fix it, unless `java` is Java >= MIN_JAVA."""
    try:
        text = _version_output(java, timeout)
    except JavaCheckError as e:
        return f"Java check failed: {e}; Spark needs Java {MIN_JAVA}+: {JAVA_FIX}"
    version = parse_java_version(text)
    if version is None:
        first = text.strip().splitlines()[0][:200] if text.strip() else "nothing"
        return (
            f"cannot tell the Java version of {java}: `-version` printed {first!r}; "
            f"Spark needs Java {MIN_JAVA}+: {JAVA_FIX}"
        )
    if version[0] < MIN_JAVA:
        return (
            f"Java at {java} is version {_raw_version(text)!r} (Java {version[0]}), too old: "
            f"PySpark 4 needs Java {MIN_JAVA}+; {JAVA_FIX}"
        )
    return None


def locate_java() -> tuple[Path | None, str]:
    """The `java` Spark will use, $JAVA_HOME/bin/java else `java` on PATH (None when absent or not
    executable), and where it was looked for, for messages."""
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home, "bin", "java")) if home else shutil.which("java")
    where = f"JAVA_HOME={home!r}" if home else "PATH"
    if not candidate or not os.path.isfile(candidate) or not os.access(candidate, os.X_OK):
        return None, where
    return Path(candidate), where


def java_missing_message(where: str) -> str:
    return f"Java not found ({where}): Spark needs a Java {MIN_JAVA}+ runtime; {JAVA_FIX}"


def check_prereqs() -> list[str]:
    """Every unmet prerequisite as one message each; empty when all are met."""
    problems = [p for p in [python_ok()] if p]
    java, where = locate_java()
    if java is None:
        problems.append(java_missing_message(where))
    elif problem := java_ok(java):
        problems.append(problem)
    return problems
