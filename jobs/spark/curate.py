"""The generic adapter of per-document stages: a registry stage's `row_logic` mapped over its inputs.

A stage whose rule is a plain function `row -> (row, reason)` needs no adapter of its own: the
registry names this one, and the rule (bound to the stage's first config section) is mapped over
the union of its inputs' kept documents, kept and rejected rows written apart.
"""

from __future__ import annotations

from functools import reduce
from typing import Any

from core.plans import resolve
from core.registry import STAGES
from jobs.spark.arrow_map import map_rows
from jobs.spark.frame import StageContext, docs, write_split


def run_row_logic(ctx: StageContext) -> dict[str, Any]:
    stage = STAGES[ctx.name]
    if not stage.row_logic:
        raise ValueError(f"stage {stage.name!r} declares no row_logic for the generic adapter")
    frames = [docs(ctx, i) for i in stage.inputs]
    df = reduce(lambda a, b: a.unionByName(b), frames)
    rule = resolve(stage.row_logic)(getattr(ctx.cfg, stage.config[0]))
    return write_split(map_rows(df, rule, stage.name), ctx)
