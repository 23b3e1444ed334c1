"""Which config fields a trigger param (or a DAG's `overrides`) may change, and the secret check.

Anyone who can trigger a DAG can set its params, and a param travels in plain text through
XCom, the Spark command line and the Ray entrypoint. So params may tune *what* a run does, never
*where* it reads or writes, *which endpoints* it contacts, the crawler's safety and opt-out
settings, or parser bounds: those come only from the deployment (the profile, the file named by
`LMFORGE_CONFIG`, the environment), which the CLI and operators control. Local folders and files
are named entries of the deployment's `locations`; a param picks a name, not a path.

The allowlist is explicit: a field added later is config-only until it is listed here, so a new
path or endpoint field can never become overridable by accident.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from core.config import ConfigError

# section -> overridable fields ("*": every field of the section).
OVERRIDABLE: dict[str, frozenset[str] | str] = {
    "crawl": frozenset(
        {
            "seeds",  # contacted through the SSRF guard; loopback only where the deployment allows it
            "max_pages",
            "max_pages_per_host",
            "max_depth",
            "delay_s",  # raised to robots.txt's Crawl-delay whatever the param says
            "allow_domains",
            "deny_domains",
            # allow_patterns / deny_patterns are regexes run on every URL: config-only (no ReDoS)
        }
    ),
    "sources": frozenset(
        {
            "include",
            "books",
            "code",
            "papers",
            "social",
            "social_format",
            "social_fields",
            "synthetic_count",
            "synthetic_seed",
        }
    ),
    "warc": frozenset({"use", "source_label"}),
    "extract": frozenset({"extractor", "min_text_chars", "max_links", "detect_language"}),
    # quality.classifier_model_path is a path: a param names a location instead (classifier_model).
    "quality": frozenset(
        {"profiles", "classifier_model", "classifier_sha256", "classifier_min_score"}
        | {"classifier_top_fraction"}
    ),
    # copyright: paths, URL regexes and licensed TDM policies are config-only; params name locations.
    "copyright": frozenset(
        {"actions", "detect_licenses", "all_rights_reserved", "honor_optouts", "optout_registry"}
        | {"blocklist", "block_domains", "protected_works", "overlap_action", "overlap_ngram"}
        | {"overlap_min_hits"}
    ),
    # pii.key_env names where the pseudonymisation key lives: config-only.
    "pii": frozenset({"enabled", "types", "action", "phone_regions", "pseudonymise"}),
    # toxicity.model_path is a path: a param names a location instead (toxicity.model).
    "toxicity": frozenset({"enabled", "model", "model_sha256", "flag_threshold", "drop_above"}),
    # decontam.evals_path is a path: a param names a location instead (decontam.evals).
    "decontam": frozenset({"evals", "ngram", "min_hits", "action"}),
    "diversity": "*",
    "dedup": "*",
    "minhash": "*",
    "tokenizer": "*",
    "shards": "*",
    "mixture": "*",
    # publish.uri is a destination: config-only.
    "publish": frozenset({"multipart_threshold_mb", "multipart_chunksize_mb", "max_concurrency", "verify"}),
    # train.init_from is a path: a param names a location instead (train.init_location).
    "train": frozenset(
        {
            *("objective", "mode", "init_location", "model_size", "seq_len", "batch_size", "grad_accum"),
            *("steps", "token_budget", "lr", "warmup_steps", "weight_decay", "grad_clip", "parallelism"),
            *("pipeline_schedule", "pipeline_microbatches", "precision", "compile", "dropout"),
            *("mlm_probability", "span_noise_density", "span_mean_length", "contrastive_temperature"),
            *("prefix_length", "prefix_hidden", "checkpoint_every", "log_every", "eval_batches"),
            *("max_failures", "seed", "eval_every"),
            *("n_layer", "n_head", "n_embd"),  # an explicit shape (a scaling sweep's ladder)
        }
    ),
    # a scaling sweep's design and fit settings: sizes, budgets and bounds, no paths or endpoints
    "scaling": "*",
    "ray": frozenset({"num_workers", "use_gpu", "cpus_per_worker"}),
    "spark": frozenset({"shuffle_partitions", "driver_memory"}),
    "validation": "*",  # gate modes and thresholds: a trigger may loosen a gate, never point it elsewhere
    # config-only sections: storage (root, endpoint, credentials), locations, profile
}

# Names that hold credentials, matched on each key's end so `token_budget` is not one but
# `hf_token`, `db_password` and `secret_access_key` are (case-insensitive).
SECRET_NAME = re.compile(
    r"(?:secret|passw(?:or)?d|token|credentials?|(?:access|api|private|secret|fernet)_key)(?:_id)?$", re.I
)
# Well-known credential formats (provider documentation; the same families detect-secrets and
# GitHub secret scanning look for). The value is never echoed in the error.
_SECRET_VALUES = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "OpenAI-style API key": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
}
_CONFIG_ONLY = (
    "it is set only by the deployment's config (profile, LMFORGE_CONFIG, environment): params "
    "cannot change where data is read or written, which endpoints are contacted, the crawler's "
    "safety and opt-out settings or parser bounds"
)


def _leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, str(key)))
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, path)
    else:
        yield path, value


def secret_kind(value: Any) -> str | None:
    """The credential family a string looks like, or None."""
    if not isinstance(value, str):
        return None
    return next((kind for kind, pattern in _SECRET_VALUES.items() if pattern.search(value)), None)


def check_overrides(overrides: dict[str, Any], source: str = "params") -> None:
    """Refuse secrets and config-only fields in user-supplied overrides, naming the field."""
    for path, value in _leaves(overrides):
        name = ".".join(path)
        if any(SECRET_NAME.search(part) for part in path):
            raise ConfigError(
                f"{source}: field '{name}' refused: secrets are never accepted as params; set them "
                "in the deployment's environment or secret store"
            )
        if kind := secret_kind(value):
            raise ConfigError(
                f"{source}: field '{name}' refused: its value looks like a secret ({kind}); "
                "secrets are never accepted as params"
            )
    for section, fields in overrides.items():
        allowed = OVERRIDABLE.get(section)
        if not isinstance(fields, dict) or allowed is None:
            raise ConfigError(f"{source}: field '{section}' refused: {_CONFIG_ONLY}")
        if allowed == "*":
            continue
        for field in fields:
            if field not in allowed:
                raise ConfigError(f"{source}: field '{section}.{field}' refused: {_CONFIG_ONLY}")
