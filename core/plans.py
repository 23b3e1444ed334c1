"""A registry stage's plan: its config sections, inputs, external facts and code version resolved
into a core/stage_run.py `Plan`. Shared by the Spark runner, the pretraining stage and the CLI."""

from __future__ import annotations

import importlib
from typing import Any

from core.code_version import code_version
from core.config import PipelineConfig
from core.registry import STAGES, Stage
from core.stage_run import Plan, plan_stage
from core.storage import Storage


def resolve(entry: str) -> Any:
    """The object named by "module:attribute" (registry entries name functions this way, so the
    registry itself imports nothing heavy)."""
    module, attr = entry.split(":")
    return getattr(importlib.import_module(module), attr)


def stage(name: str) -> Stage:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; known: {', '.join(STAGES)}")
    return STAGES[name]


def stage_code_version(name: str) -> str:
    s = stage(name)
    return code_version(s.adapter, *s.logic)


def plan_for(storage: Storage, run_id: str, name: str, cfg: PipelineConfig) -> Plan:
    s = stage(name)
    external = resolve(s.external)(cfg) if s.external else None
    return plan_stage(
        storage, run_id, name, cfg, inputs=s.upstream, sections=s.config,
        code=stage_code_version(name), external=external,
    )  # fmt: skip
