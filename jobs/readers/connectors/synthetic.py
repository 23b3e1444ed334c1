"""Seeded generators of programmatic documents whose correctness the generator itself guarantees.

- `arithmetic_word_problem`: multi-step word problems (stock, shopping, travel, sharing) in the
  GSM8K style (Cobbe et al. 2021): the problem, numbered worked steps and `Answer: N`. Every number
  in the solution is computed by the generator, so the worked solution is right by construction.
- `python_exercise`: a task statement, a Python solution and `assert` tests. The expected values
  come from a *separate* reference implementation in the generator (a closed form or another
  algorithm), and the solution is verified by executing the tests in-process with a restricted
  namespace (a few safe builtins, no imports); a solution that fails is rejected, not emitted.

Document `i` of seed `s` depends only on (generator, s, i) — `random.Random` seeded with a string is
stable across runs and hash seeds — so the same seed gives identical documents whatever the count.
They are our own output: `license="CC0-1.0"`, `license_source="generated"`, no timestamps.
"""

from __future__ import annotations

import builtins
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from math import lcm
from typing import Any

from core.schema import make_document
from jobs.readers.connectors import Ingested

NAMES = ("Ada", "Bram", "Chen", "Dara", "Emeka", "Farah", "Goran", "Hana", "Ines", "Jonas", "Kofi", "Lena")
ITEMS = ("apples", "pencils", "marbles", "books", "cookies", "stickers", "bottles", "candles")
Steps = list[str]


# ---------------------------------------------------------------- arithmetic


def _stock(rng: random.Random) -> tuple[str, Steps, int]:
    boxes, per_box, delivered = rng.randint(3, 12), rng.randint(4, 24), rng.randint(1, 6)
    start = boxes * per_box
    sold1 = rng.randint(1, start // 2)
    sold2 = rng.randint(1, start - sold1)
    item = rng.choice(ITEMS)
    left, added = start - sold1 - sold2, delivered * per_box
    question = (
        f"A shop has {boxes} boxes of {item} with {per_box} {item} in each box. It sells {sold1} {item} "
        f"on Monday and {sold2} on Tuesday. On Wednesday {delivered} more boxes of the same size arrive. "
        f"How many {item} does the shop have now?"
    )
    steps = [
        f"At the start the shop has {boxes} × {per_box} = {start} {item}.",
        f"After the two days of sales it has {start} − {sold1} − {sold2} = {left} {item}.",
        f"The delivery adds {delivered} × {per_box} = {added} {item}.",
        f"Now it has {left} + {added} = {left + added} {item}.",
    ]
    return question, steps, left + added


def _shopping(rng: random.Random) -> tuple[str, Steps, int]:
    name, (item1, item2) = rng.choice(NAMES), rng.sample(ITEMS, 2)
    n1, p1, n2, p2 = rng.randint(2, 9), rng.randint(1, 12), rng.randint(2, 9), rng.randint(1, 12)
    total = n1 * p1 + n2 * p2
    note = next(b for b in (20, 50, 100, 200) if b >= total)
    question = (
        f"{name} buys {n1} {item1} at ${p1} each and {n2} {item2} at ${p2} each, and pays with a "
        f"${note} note. How much change does {name} get, in dollars?"
    )
    steps = [
        f"The {item1} cost {n1} × ${p1} = ${n1 * p1}.",
        f"The {item2} cost {n2} × ${p2} = ${n2 * p2}.",
        f"Together that is ${n1 * p1} + ${n2 * p2} = ${total}.",
        f"The change is ${note} − ${total} = ${note - total}.",
    ]
    return question, steps, note - total


def _travel(rng: random.Random) -> tuple[str, Steps, int]:
    name = rng.choice(NAMES)
    v1, t1, v2, t2 = rng.randint(40, 90), rng.randint(1, 4), rng.randint(40, 90), rng.randint(1, 3)
    done = v1 * t1 + v2 * t2
    trip = done + rng.randint(10, 300)
    question = (
        f"{name} drives {t1} hours at {v1} km/h and then {t2} hours at {v2} km/h. The whole trip is "
        f"{trip} km long. How many kilometres are left?"
    )
    steps = [
        f"In the first part {name} covers {v1} × {t1} = {v1 * t1} km.",
        f"In the second part {name} covers {v2} × {t2} = {v2 * t2} km.",
        f"So far that is {v1 * t1} + {v2 * t2} = {done} km.",
        f"Left to drive: {trip} − {done} = {trip - done} km.",
    ]
    return question, steps, trip - done


def _sharing(rng: random.Random) -> tuple[str, Steps, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    bags, per_bag, friends = rng.randint(2, 9), rng.randint(5, 30), rng.randint(2, 7)
    total = bags * per_bag
    each, rest = divmod(total, friends)
    question = (
        f"{name} has {bags} bags with {per_bag} {item} in each and shares them equally among "
        f"{friends} friends, keeping whatever cannot be shared equally. How many {item} does each friend get?"
    )
    steps = [
        f"{name} has {bags} × {per_bag} = {total} {item}.",
        f"{total} ÷ {friends} = {each} with remainder {rest}, since {friends} × {each} + {rest} = {total}.",
        f"Each friend gets {each} {item} and {name} keeps {rest}.",
    ]
    return question, steps, each


ARITHMETIC = {"stock": _stock, "shopping": _shopping, "travel": _travel, "sharing": _sharing}


def arithmetic_word_problem(rng: random.Random) -> tuple[str, dict[str, str]]:
    template = rng.choice(sorted(ARITHMETIC))
    question, steps, answer = ARITHMETIC[template](rng)
    worked = "\n".join(f"{i}. {step}" for i, step in enumerate(steps, start=1))
    text = f"Problem: {question}\n\nSolution:\n{worked}\n\nAnswer: {answer}\n"
    return text, {"synthetic.template": template, "synthetic.answer": str(answer)}


# ---------------------------------------------------------------- code exercises

SAFE_BUILTINS: dict[str, Any] = {
    name: getattr(builtins, name)
    for name in ("abs", "all", "any", "bool", "divmod", "enumerate", "int", "len", "list", "max", "min",
                 "range", "reversed", "sorted", "str", "sum", "tuple", "zip", "AssertionError")
}  # fmt: skip


def verify_exercise(solution: str, tests: str) -> str | None:
    """None when the tests pass against the solution, else the failure (`AssertionError: ...`).
    Runs with only SAFE_BUILTINS: no imports, no files, no `open`, `eval` or `__import__`."""
    namespace: dict[str, Any] = {"__builtins__": SAFE_BUILTINS}
    try:
        exec(compile(f"{solution}\n{tests}\n", "<synthetic exercise>", "exec"), namespace)
    except Exception as err:  # a failing exercise is reported, never raised
        return f"{type(err).__name__}: {err}"
    return None


@dataclass(frozen=True)
class Exercise:
    task: str
    solution: str
    reference: Callable[..., Any]  # an independent implementation that computes the expected values
    cases: list[tuple[Any, ...]]
    function: str

    def tests(self) -> str:
        lines = []
        for args in self.cases:
            shown = ", ".join(repr(a) for a in args)
            lines.append(f"assert {self.function}({shown}) == {self.reference(*args)!r}")
        return "\n".join(lines)


def _multiples(rng: random.Random) -> Exercise:
    k, m = sorted(rng.sample((2, 3, 5, 7, 11), 2))  # primes: neither divides the other

    def reference(limit: int) -> int:  # inclusion-exclusion over arithmetic series
        def series(d: int) -> int:
            n = (limit - 1) // d
            return d * n * (n + 1) // 2

        return series(k) + series(m) - series(lcm(k, m))

    solution = (
        "def sum_of_multiples(limit):\n"
        f"    return sum(n for n in range(1, limit) if n % {k} == 0 or n % {m} == 0)\n"
    )
    task = f"Write `sum_of_multiples(limit)`: the sum of the integers 1 <= n < limit that {k} or {m} divide."
    cases = [(n,) for n in sorted(rng.sample(range(1, 500), 4))]
    return Exercise(task, solution, reference, cases, "sum_of_multiples")


def _digit_powers(rng: random.Random) -> Exercise:
    p = rng.randint(2, 4)
    solution = (
        "def digit_power_sum(n):\n    total = 0\n    while n > 0:\n"
        f"        n, digit = divmod(n, 10)\n        total += digit ** {p}\n    return total\n"
    )
    task = f"Write `digit_power_sum(n)`: the sum of the {p}-th powers of the decimal digits of `n` (n ≥ 0)."
    cases = [(0,), *((rng.randint(1, 10**6),) for _ in range(3))]
    return Exercise(task, solution, lambda n: sum(int(d) ** p for d in str(n)), cases, "digit_power_sum")


def _running_max(rng: random.Random) -> Exercise:
    solution = (
        "def running_max(values):\n    out = []\n    for v in values:\n"
        "        out.append(v if not out or v > out[-1] else out[-1])\n    return out\n"
    )
    task = "Write `running_max(values)`: a list whose i-th item is the largest of `values[0..i]`."
    cases = [([],), *(([rng.randint(-50, 50) for _ in range(rng.randint(1, 8))],) for _ in range(3))]
    return Exercise(task, solution, lambda xs: list(accumulate(xs, max)), cases, "running_max")


def _rotate(rng: random.Random) -> Exercise:
    solution = (
        "def rotate(values, k):\n    if not values:\n        return []\n    out = list(values)\n"
        "    for _ in range(k % len(values)):\n        out.insert(0, out.pop())\n    return out\n"
    )
    task = "Write `rotate(values, k)`: the list rotated right by `k` places (k ≥ 0)."
    cases: list[tuple[Any, ...]] = [([], 3)]
    cases += [([rng.randint(0, 9) for _ in range(rng.randint(1, 7))], rng.randint(0, 12)) for _ in range(3)]
    return Exercise(task, solution, _rotated, cases, "rotate")


def _rotated(values: list[int], k: int) -> list[int]:
    """Reference by slicing: the last k mod n items move to the front."""
    cut = len(values) - k % len(values) if values else 0
    return values[cut:] + values[:cut]


def _vowels(rng: random.Random) -> Exercise:
    vowels = "aeiou" + ("y" if rng.random() < 0.5 else "")
    words = ["Banana", "rhythm", "Queueing", "sky", "Encyclopaedia", "", "AEIOU", "python"]
    solution = (
        "def count_vowels(text):\n    n = 0\n    for ch in text.lower():\n"
        f"        if ch in {vowels!r}:\n            n += 1\n    return n\n"
    )
    task = (
        f"Write `count_vowels(text)`: how many letters of `text` are one of {', '.join(vowels)} (any case)."
    )
    cases = [(w,) for w in rng.sample(words, 4)]
    return Exercise(task, solution, lambda t: sum(t.lower().count(v) for v in vowels), cases, "count_vowels")


EXERCISES = {"sum_of_multiples": _multiples, "digit_power_sum": _digit_powers, "running_max": _running_max,
             "rotate": _rotate, "count_vowels": _vowels}  # fmt: skip


def python_exercise(rng: random.Random) -> tuple[str, dict[str, str]]:
    template = rng.choice(sorted(EXERCISES))
    exercise = EXERCISES[template](rng)
    tests = exercise.tests()
    text = (
        f"Task: {exercise.task}\n\nSolution:\n```python\n{exercise.solution}```\n\n"
        f"Tests:\n```python\n{tests}\n```\n"
    )
    failure = verify_exercise(exercise.solution, tests)
    return text, {"synthetic.template": template, "synthetic.verified": "false" if failure else "true",
                  "synthetic.failure": failure or ""}  # fmt: skip


GENERATORS: dict[str, Callable[[random.Random], tuple[str, dict[str, str]]]] = {
    "arithmetic_word_problem": arithmetic_word_problem,
    "python_exercise": python_exercise,
}


def synthetic_document(generator: str, seed: int, index: int) -> Ingested:
    rng = random.Random(f"{generator}:{seed}:{index}")
    text, extra = GENERATORS[generator](rng)
    annotations = {
        "synthetic.generator": generator,
        "synthetic.seed": str(seed),
        "synthetic.index": str(index),
    }
    annotations.update({k: v for k, v in extra.items() if v})
    doc = make_document(
        "synthetic",
        f"synthetic://{generator}/{seed}/{index}",
        text,
        domain="synthetic",
        license="CC0-1.0",
        license_source="generated",
        content_type="text/markdown",
        annotations=annotations,
    )
    failure = extra.get("synthetic.failure")
    return doc, f"synthetic_failed_verification:{failure}" if failure else None


def iter_synthetic(count: int, seed: int = 0) -> Iterator[Ingested]:
    """`count` documents, the generators taking turns (index i uses generator i mod 2)."""
    names = sorted(GENERATORS)
    for index in range(count):
        yield synthetic_document(names[index % len(names)], seed, index)
