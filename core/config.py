"""One typed configuration with named profiles.

Every entry point (CLI, Airflow params, tests) builds its settings through `load_config`, so a bad
value fails in one place, at load time, with a message that names the field.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from core.copyright_policy import DEFAULT_ACTIONS

# The folder that holds the packages core/, jobs/, dags/...: a checkout, or site-packages after
# `pip install .` (the DAGs and the Spark entry point ship as package data).
REPO_ROOT = Path(__file__).resolve().parent.parent
# The working directory: `.data/` (local storage), `.airflow/` and `.demo/` live under it. Default the
# current folder, exported on first import so that the processes this one starts (Spark executors,
# Ray workers, Airflow task runners, whose working directories differ) agree on it.
HOME_ENV = "LMFORGE_HOME"
os.environ.setdefault(HOME_ENV, os.getcwd())


def lmforge_home() -> Path:
    """$LMFORGE_HOME, resolved: where a run's local files go."""
    return Path(os.environ.get(HOME_ENV) or os.getcwd()).resolve()


def default_root() -> str:
    """Local storage's default root, `$LMFORGE_HOME/.data`."""
    return str(lmforge_home() / ".data")


class ConfigError(ValueError):
    """A configuration value is unknown or invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StorageConfig(_Strict):
    """Where datasets live: a local directory or an `s3://bucket/prefix` URI."""

    root: str = Field(default_factory=default_root)
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    # S3-compatible servers (MinIO, moto) reject the CRC checksums boto3 sends by default.
    checksum: Literal["when_required", "when_supported"] = "when_required"
    connect_timeout_s: float = Field(5.0, gt=0, le=600)
    max_attempts: int = Field(2, ge=1, le=10)


MEMORY = r"^(?:\d{1,9}[km]|\d{1,4}g|[1-4]t)$"  # Spark/JVM memory sizes, at most 4 TiB
K8S_NAME = r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$"  # an RFC 1123 label (namespaces, accounts)


class SparkKubernetesConfig(_Strict):
    """Spark on Kubernetes through the Kubeflow Spark operator (`spark.submit: kubernetes`): each stage
    becomes a `SparkApplication` that `SparkKubernetesOperator` creates and watches."""

    namespace: str = Field("lmforge", pattern=K8S_NAME)
    conn_id: str = "kubernetes_default"
    image: str = Field("lmforge:dev", max_length=256)
    service_account: str = Field("lmforge-spark", pattern=K8S_NAME)
    executor_instances: int = Field(2, ge=1, le=10_000)
    executor_cores: int = Field(2, ge=1, le=256)
    executor_memory: str = Field("4g", pattern=MEMORY)


class SparkConfig(_Strict):
    master: str = "local[*]"
    conn_id: str = "spark_default"
    driver_memory: str = Field("2g", pattern=MEMORY)
    shuffle_partitions: int = Field(4, ge=1, le=100_000)
    # How the curation DAG submits a stage: spark-submit to `master` (local, standalone, YARN), or a
    # SparkApplication on Kubernetes (`kubernetes` below). Read when the DAG file is parsed.
    submit: Literal["spark-submit", "kubernetes"] = "spark-submit"
    # Airflow pool the stage tasks share, so that independent stages (crawl, ingest, warc) do not all
    # land on a small cluster at once; its size is the stack's (orchestration/pools.py creates it).
    pool: str = Field("spark", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    pool_slots: int = Field(2, ge=1, le=1024)
    # spark.cores.max per application on a standalone master (None: Spark's default, every core).
    cores_max: int | None = Field(None, ge=1, le=1_000_000)
    kubernetes: SparkKubernetesConfig = SparkKubernetesConfig()


class RayConfig(_Strict):
    address: str | None = None  # None: start a local Ray inside the task
    num_workers: int = Field(2, ge=1, le=4096)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0, le=1024)


class CrawlConfig(_Strict):
    """Crawler politeness, limits and scope (rules and sources: jobs/crawl/fetch.py, jobs/crawl/optout.py).

    Politeness: one connection per host, `delay_s` after each response, raised to robots.txt's
    `Crawl-delay` (RFC 9309 section 2.2.4 lets crawlers read it); hosts asking for more than
    `max_crawl_delay_s` are skipped (Apache Nutch `fetcher.max.crawl.delay`, default 30 s).
    Retries: 429/5xx, `backoff_base_s * 2**attempt` or `Retry-After` (RFC 9110 section 10.2.3).
    `max_redirects` 5: RFC 9110 section 15.4 (loops detected; RFC 2068 advised at most five).
    Scope: the seed hosts unless `allow_domains` is set (suffix match on labels); `deny_domains`
    and the URL regexes (`re.search`) apply on top.
    """

    seeds: list[str] = Field([], max_length=100_000)
    user_agent: str = "LMForgeBot/0.1 (+https://github.com/lmforge)"
    max_pages: int = Field(500, ge=0, le=10_000_000)
    max_pages_per_host: int = Field(1000, ge=0, le=10_000_000)
    max_depth: int = Field(3, ge=0, le=100)
    delay_s: float = Field(0.0, ge=0, le=3600)
    max_crawl_delay_s: float = Field(30.0, ge=0, le=3600)
    # One request's total time, connect, headers and body together (a server dripping bytes must
    # not stay under a per-read timeout forever); and one host's whole task (robots.txt, pages,
    # politeness delays): a host past it is abandoned with its pages so far kept.
    timeout_s: float = Field(10.0, gt=0, le=600)
    host_deadline_s: float = Field(3600.0, gt=0, le=7 * 86400)
    max_bytes: int = Field(5_000_000, gt=0, le=1_000_000_000)
    max_retries: int = Field(2, ge=0, le=10)
    backoff_base_s: float = Field(1.0, ge=0, le=600)
    max_retry_wait_s: float = Field(60.0, ge=0, le=3600)
    max_redirects: int = Field(5, ge=0, le=30)
    allowed_content_types: list[str] = ["text/html", "application/xhtml+xml", "text/plain"]
    honor_ai_optout: bool = True  # noai meta/X-Robots-Tag and W3C TDMRep reservations
    allow_domains: list[str] = Field([], max_length=100_000)
    deny_domains: list[str] = Field([], max_length=100_000)
    allow_patterns: list[str] = Field([], max_length=1000)  # regexes: config-only (no ReDoS by param)
    deny_patterns: list[str] = Field([], max_length=1000)
    allow_loopback: bool = False

    @field_validator("allowed_content_types", "allow_domains", "deny_domains")
    @classmethod
    def _lower(cls, values: list[str]) -> list[str]:
        return [v.strip().lower().strip(".") for v in values]

    @field_validator("allow_patterns", "deny_patterns")
    @classmethod
    def _regexes(cls, values: list[str]) -> list[str]:
        for v in values:
            try:
                re.compile(v)
            except re.error as err:
                raise ValueError(f"not a valid regular expression {v!r}: {err}") from None
        return values


SourceKind = Literal["books", "code", "papers", "social", "synthetic"]
SocialField = Literal["id", "text", "author", "created_at", "thread", "reply_to", "community", "platform"]


class SourcesConfig(_Strict):
    """Local sources ingested next to the crawl (jobs/readers/connectors/); an empty path means none.

    `include` picks the kinds to ingest among those configured. `social_fields` names the column
    (or dotted JSON path) of a post field when the dump's names are not among the connector's
    defaults, e.g. `{"id": "", "text": "tweet"}` for a CSV whose id column has no header.
    """

    include: list[SourceKind] = ["books", "code", "papers", "social", "synthetic"]
    # Paths: set only by the deployment's config. A param picks a named entry of `locations`
    # instead (`books`, `code`, `papers`, `social`); the name replaces the path here at load time.
    books_dir: str = ""
    code_dir: str = ""
    # The licence the deployment declares for `code_dir` when its licence file names none (an SPDX
    # expression); None: such files stay unknown, and the copyright policy decides (issue 14).
    code_license: str | None = Field(None, max_length=200)
    papers_dir: str = ""
    social_paths: list[str] = Field([], max_length=10_000)  # dump files or folders of dumps
    books: str | None = None
    code: str | None = None
    papers: str | None = None
    social: list[str] = Field([], max_length=1000)
    social_format: Literal["auto", "jsonl", "csv"] = "auto"
    social_fields: dict[SocialField, str] = {}
    synthetic_count: int = Field(0, ge=0, le=10_000_000)  # 0: no synthetic documents
    synthetic_seed: int = Field(0, ge=0, le=2**32 - 1)
    max_file_bytes: int = Field(50_000_000, ge=1, le=10**10)  # larger files are rejected unread
    # Parser bounds (a limit hit rejects that record or member, with its reason; the rest is kept).
    # Archives (EPUB is a ZIP): Apache POI's ZipSecureFile refuses entries inflating more than 100x
    # (MIN_INFLATE_RATIO 0.01); per-member and total caps bound what a small bomb can reach.
    max_member_bytes: int = Field(50_000_000, ge=1, le=10**10)  # one uncompressed ZIP/EPUB member
    max_unpacked_bytes: int = Field(200_000_000, ge=1, le=10**11)  # all members of one archive
    max_compression_ratio: float = Field(100.0, gt=1, le=100_000)
    # zipfile loads the whole central directory (~1 KiB of Python objects per entry) before any
    # size check: the entry count is read from the end-of-central-directory record first. An EPUB
    # holds one file per chapter, image and style sheet (hundreds); 10,000 leaves ample room.
    max_archive_members: int = Field(10_000, ge=1, le=65_535)
    # JSONL: a longer line is rejected without being held whole; deeper JSON is rejected (serde_json
    # stops at 128 levels; CPython's json would raise RecursionError near 1,000).
    max_line_bytes: int = Field(8_000_000, ge=1, le=10**9)
    max_json_depth: int = Field(128, ge=1, le=900)
    # CSV: Python's csv module defaults to 131,072 characters per field; a longer field rejects
    # its row and reading goes on with the next one.
    max_csv_field_chars: int = Field(1_000_000, ge=1, le=10**9)


class WarcConfig(_Strict):
    """WARC/WET/ARC files (or folders of them) to ingest, e.g. Common Crawl segments."""

    paths: list[str] = Field([], max_length=100_000)  # config-only; a param names `use` locations
    use: list[str] = Field([], max_length=1000)  # names in `locations`, replacing `paths` when set
    source_label: str | None = None  # default: the warcinfo record's isPartOf
    # Parser bounds. Common Crawl truncates every HTTP payload at 1 MiB (`WARC-Truncated: length`),
    # so 10 MB per record leaves room for other archives' pages; a record past it is rejected
    # `warc_record_too_large` and reading goes on. The file cap bounds decompressed bytes read
    # from one file (a CC WARC is ~1 GB gzipped, ~5 GB inflated). Header lines: Apache httpd
    # refuses request header fields over 8,190 bytes (LimitRequestFieldSize); we allow 64 KiB per
    # line and 256 KiB per header block.
    max_record_bytes: int = Field(10_000_000, ge=1, le=10**10)
    max_file_bytes: int = Field(20_000_000_000, ge=1, le=10**12)
    max_header_line_bytes: int = Field(65_536, ge=256, le=10**7)
    max_header_bytes: int = Field(262_144, ge=256, le=10**8)


class ExtractConfig(_Strict):
    """HTML to text: trafilatura for quality (FineWeb's choice), resiliparse for speed (DCLM's)."""

    extractor: Literal["trafilatura", "resiliparse"] = "trafilatura"
    min_text_chars: int = Field(1, ge=0, le=10**7)  # fewer extracted characters: `extract_no_text`
    max_links: int = Field(200, ge=0, le=100_000)  # outgoing links kept in `extract.links`
    # HTML larger than this is rejected `extract_too_large` before parsing (trafilatura's own
    # settings.cfg uses MAX_FILE_SIZE = 20000000); a page that takes longer than
    # `max_parse_s` to extract is rejected `extract_timeout`.
    max_html_bytes: int = Field(20_000_000, ge=1, le=10**9)
    max_parse_s: float = Field(30.0, gt=0, le=3600)
    # Element nesting deeper than this is rejected `extract_too_deep` before parsing: main-content
    # extraction costs size x depth (resiliparse: 20 MB at depth 256 took 13 s, 1 MB at depth 2048
    # took 3 s, 100k-deep pages ran for minutes). 256 is libxml2's default xmlParserMaxDepth, past
    # which lxml (and so trafilatura) refuses a document anyway.
    max_html_depth: int = Field(256, ge=8, le=100_000)
    detect_language: bool = True


class LanguageRules(_Strict):
    """Language ID (py3langid, Lui & Baldwin 2012). `allowed` empty: every language is kept.
    `min_score` 0.65 is FineWeb's language-score threshold (Penedo et al. 2024, section 3.2)."""

    allowed: list[Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]] = Field([], max_length=500)
    min_score: float = Field(0.65, ge=0, le=1)
    min_chars: int = Field(20, ge=0, le=10**6)  # less comment/prose text than this: no language asserted


class GopherQualityRules(_Strict):
    """Rae et al. (2021), "Scaling Language Models: ... Gopher", appendix A.1.1 (quality filters)."""

    min_words: int = Field(50, ge=0, le=10**9)  # A.1.1: "between 50 and 100,000 words"
    max_words: int | None = Field(100_000, ge=1, le=10**9)  # None: no upper bound
    min_mean_word_length: float = Field(3.0, ge=0, le=1000)  # A.1.1: "mean word length ... 3 to 10"
    max_mean_word_length: float = Field(10.0, gt=0, le=1000)
    max_hash_word_ratio: float = Field(0.1, ge=0, le=1000)  # A.1.1: "symbol-to-word ratio > 0.1" ('#')
    max_ellipsis_word_ratio: float = Field(0.1, ge=0, le=1000)  # ... and, separately, the ellipsis
    max_bullet_lines: float = Field(0.9, ge=0, le=1)  # A.1.1: "more than 90% of lines starting with a bullet"
    max_ellipsis_lines: float = Field(0.3, ge=0, le=1)  # A.1.1: "more than 30% ending with an ellipsis"
    min_alpha_words: float = Field(0.8, ge=0, le=1)  # A.1.1: "80% of words ... an alphabetic character"
    min_stop_words: int = Field(2, ge=0, le=100)  # A.1.1: "at least two of the following English words"
    stop_words: list[str] = Field(["the", "be", "to", "of", "and", "that", "have", "with"], max_length=1000)


class GopherRepetitionRules(_Strict):
    """Rae et al. (2021), appendix A.1.1 (repetition removal) and table A1: each a maximum fraction."""

    max_dup_lines: float = Field(0.30, ge=0, le=1)  # duplicate line fraction
    max_dup_paragraphs: float = Field(0.30, ge=0, le=1)  # duplicate paragraph fraction
    max_dup_line_chars: float = Field(0.20, ge=0, le=1)  # characters in duplicate lines
    max_dup_paragraph_chars: float = Field(0.20, ge=0, le=1)  # characters in duplicate paragraphs
    # n -> max fraction of characters in the most frequent n-gram (table A1: 2..4)
    max_top_ngram_chars: dict[int, float] = Field({2: 0.20, 3: 0.18, 4: 0.16}, max_length=20)
    # n -> max fraction of characters in duplicated n-grams (table A1: 5..10)
    max_dup_ngram_chars: dict[int, float] = Field(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}, max_length=20
    )


class C4Rules(_Strict):
    """Raffel et al. (2020), "Exploring the Limits of Transfer Learning ... (T5)", section 2.2, and
    the TFDS `c4_utils.clean_page` constants (5 words a line, 3 sentences, words up to 1000 chars)."""

    line_terminal_punct: bool = True  # keep only lines ending in . ! ? or an end quotation mark
    min_words_per_line: int = Field(5, ge=0, le=10_000)  # 2.2: "lines that contained at least 5 words"
    min_sentences: int = Field(3, ge=0, le=10_000)  # 2.2: "any page with fewer than 3 sentences"
    max_word_length: int | None = Field(1000, ge=1, le=10**7)  # TFDS: such lines are removed
    remove_citations: bool = True  # 2.2: [1], [citation needed], [edit]
    filter_javascript: bool = True  # 2.2: lines with the word "javascript"
    filter_policy: bool = True  # 2.2: "terms of use", "privacy policy", cookie notices
    filter_lorem_ipsum: bool = True  # 2.2: pages with "lorem ipsum"
    filter_curly_bracket: bool = True  # 2.2: pages with "{"
    page_rules_on_kept_lines: bool = False  # True: TFDS/datatrove (only lines that survived count)


class FineWebRules(_Strict):
    """Penedo et al. (2024), "The FineWeb Datasets", section 3.5 (the three added heuristic filters)."""

    max_line_punct: float = Field(0.12, ge=0, le=1)  # drop when lines ending in punctuation <= 0.12
    max_dup_line_chars: float = Field(0.1, ge=0, le=1)  # drop when chars in duplicated lines >= 0.1
    short_line_chars: int = Field(30, ge=1, le=10**6)  # "lines shorter than 30 characters"
    max_short_lines: float = Field(0.67, ge=0, le=1)  # drop when such lines >= 0.67


class CodeRules(_Strict):
    """Chen et al. (2021) Codex section 3.1; Li et al. (2023) StarCoder section 3 (bigcode-dataset
    `preprocessing/filtering.py`); CodeParrot's `is_autogenerated` (auto-generated files)."""

    max_line_length: int = Field(1000, ge=1, le=10**8)  # Codex: max line length > 1000
    max_mean_line_length: float = Field(100.0, gt=0, le=10**8)  # Codex: mean line length > 100
    min_alnum_fraction: float = Field(0.25, ge=0, le=1)  # StarCoder: alphanumeric fraction < 0.25
    autogen_lines: int = Field(5, ge=0, le=1000)  # CodeParrot is_autogenerated: markers in the first 5 lines
    # StarCoder: JSON and YAML; csv and tsv are ours (tables of data, the same reason)
    data_formats: list[str] = Field(["json", "yaml", "csv", "tsv"], max_length=100)  # by `code.language`
    min_data_chars: int = Field(50, ge=0, le=10**9)  # StarCoder: JSON/YAML kept at 50-5000 characters
    max_data_chars: int = Field(5000, ge=0, le=10**9)
    # StarCoder's alpha filter (< 25% letters; there per extension, here on the data formats)
    min_alpha_fraction: float = Field(0.25, ge=0, le=1)
    xml_header_chars: int = Field(100, ge=0, le=10**6)  # StarCoder: "<?xml version=" in the first 100
    min_html_text_fraction: float = Field(0.2, ge=0, le=1)  # StarCoder: visible text >= 20% of the file
    min_html_text_chars: int = Field(100, ge=0, le=10**9)  # StarCoder: and at least 100 characters
    max_markup_fraction: float = Field(0.5, ge=0, le=1)  # ours: chars inside <tags> in a non-markup file
    comment_language: bool = True  # annotate `quality.comment_language`, never rejects by default


class SocialRules(_Strict):
    """Short posts are normal (no Gopher 50-word minimum); see README "Rules and their sources"."""

    min_chars: int = Field(20, ge=0, le=10**6)  # fewer visible characters: `social_min_chars`
    min_words: int = Field(3, ge=0, le=10**6)  # fewer words that are not URLs/mentions/hashtags
    max_char_run: int = Field(10, ge=2, le=10**6)  # a character repeated more times in a row


class SyntheticRules(_Strict):
    """Synthetic data is judged by its generator's verification (`synthetic.verified`), not prose rules."""

    require_verified: bool = True


class SourceProfile(_Strict):
    """The rule sets one source type gets; None turns a rule set off."""

    language: LanguageRules | None = None
    gopher_quality: GopherQualityRules | None = None
    gopher_repetition: GopherRepetitionRules | None = None
    c4: C4Rules | None = None
    fineweb: FineWebRules | None = None
    code: CodeRules | None = None
    social: SocialRules | None = None
    synthetic: SyntheticRules | None = None


# Per-source defaults (why each differs from the web's published rules: README "Rules and their
# sources"). A run's `quality.profiles` is merged over these, so `{"social": {"social": {"min_chars":
# 10}}}` changes one threshold and `{"web": {"c4": null}}` turns C4 off.
DEFAULT_PROFILES: dict[str, dict[str, Any]] = {
    "web": {"language": {}, "gopher_quality": {}, "gopher_repetition": {}, "c4": {}, "fineweb": {}},
    "book": {"language": {}, "gopher_quality": {"max_words": None}, "gopher_repetition": {}},
    "paper": {"language": {}, "gopher_quality": {"max_words": None}},
    "code": {"language": {"min_score": 0.0}, "code": {}},
    "social": {"language": {"min_score": 0.0}, "social": {}},
    "synthetic": {"language": {"min_score": 0.0}, "synthetic": {}},
}


SourceTypeName = Literal["web", "book", "code", "paper", "social", "synthetic"]  # core/schema.py SOURCE_TYPES


def _default_profiles() -> dict[SourceTypeName, SourceProfile]:
    return {k: SourceProfile.model_validate(v) for k, v in DEFAULT_PROFILES.items()}  # type: ignore[misc]


class QualityConfig(_Strict):
    """Per-source quality profiles (`profiles`, merged over DEFAULT_PROFILES) and an optional trained
    score: `classifier_model` names a location (resolved to the config-only `classifier_model_path`)."""

    profiles: dict[SourceTypeName, SourceProfile] = Field(default_factory=_default_profiles)
    classifier_model: str | None = None  # a name in `locations`
    classifier_model_path: str | None = None  # config-only: set from `classifier_model`
    classifier_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    classifier_min_score: float | None = Field(None, ge=0, le=1)  # drop below (off by default)
    classifier_top_fraction: float | None = Field(None, gt=0, le=1)  # keep the best share per source

    @model_validator(mode="before")
    @classmethod
    def _merge_profiles(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        legacy = {k: data[k] for k in _LEGACY if k in data}
        given = data.get("profiles")
        profiles: dict[str, Any] = given if isinstance(given, dict) else {}
        if not legacy and not profiles:
            return data
        merged = deep_merge(DEFAULT_PROFILES, profiles)
        for key, value in legacy.items():  # the flat names of the one-profile config: every profile
            rules, field = _LEGACY[key]
            for profile in merged.values():
                if isinstance(profile.get(rules), dict):
                    profile[rules][field] = value
        rest = {k: v for k, v in data.items() if k not in _LEGACY}
        return {**rest, "profiles": merged}


# The flat fields of the former single-profile config, still accepted: old name -> (rule set, field).
_LEGACY = {
    "min_words": ("gopher_quality", "min_words"),
    "max_words": ("gopher_quality", "max_words"),
    "min_mean_word_length": ("gopher_quality", "min_mean_word_length"),
    "max_mean_word_length": ("gopher_quality", "max_mean_word_length"),
    "min_alpha_word_fraction": ("gopher_quality", "min_alpha_words"),
    "max_code_line_length": ("code", "max_line_length"),
    "max_code_mean_line_length": ("code", "max_mean_line_length"),
    "min_code_alnum_fraction": ("code", "min_alnum_fraction"),
}


_LicenseClassName = Literal[
    "public_domain", "permissive", "weak_copyleft", "strong_copyleft", "nc_nd", "proprietary", "unknown"
]
_ActionName = Literal["keep", "drop", "flag"]


def _default_actions() -> dict[SourceTypeName, dict[_LicenseClassName, _ActionName]]:
    return copy.deepcopy(DEFAULT_ACTIONS)  # type: ignore[arg-type]


class CopyrightConfig(_Strict):
    """The copyright stage (jobs/copyright/screen.py): licence per document, its class and the action
    per source type (`actions`, merged over core/copyright_policy.py DEFAULT_ACTIONS), opt-outs,
    blocklists and verbatim overlap with the protected works of `protected_works` (a location).

    Paths are config-only: a param names a location (`optout_registry`, `blocklist`,
    `protected_works`); `block_url_patterns` are regexes run on every URL and `licensed_tdm_policies`
    the TDMRep policy URLs the deployment holds a licence for, so both are config-only too.
    """

    actions: dict[SourceTypeName, dict[_LicenseClassName, _ActionName]] = Field(
        default_factory=_default_actions
    )
    detect_licenses: bool = True  # ScanCode-database detection on each document's text
    all_rights_reserved: bool = True  # no licence plus an "All rights reserved" notice: proprietary
    honor_optouts: bool = True  # noai, TDMRep, archived robots.txt and the opt-out registry
    user_agent: str | None = Field(None, max_length=500)  # robots scoping; None: crawl.user_agent
    optout_registry: str | None = None  # a name in `locations`: JSON lines {domain, opt_out, ...}
    optout_registry_path: str | None = None  # config-only: set from `optout_registry`
    blocklist: str | None = None  # a name in `locations`: one domain per line
    blocklist_path: str | None = None  # config-only
    block_domains: list[str] = Field([], max_length=100_000)  # a domain blocks its subdomains
    block_url_patterns: list[str] = Field([], max_length=1000)  # regexes: config-only (no ReDoS by param)
    licensed_tdm_policies: list[str] = Field([], max_length=1000)  # config-only
    protected_works: str | None = None  # a name in `locations`: a folder of .txt files
    protected_works_path: str | None = None  # config-only
    overlap_action: Literal["drop", "redact", "flag"] = "drop"
    overlap_ngram: int = Field(7, ge=3, le=64)  # jobs/copyright/overlap.py: 7 measured best
    overlap_min_hits: int = Field(5, ge=1, le=10_000)  # matched n-grams clustered in one span
    max_protected_bytes: int = Field(4 << 30, ge=1, le=1 << 40)  # the whole registry

    @model_validator(mode="before")
    @classmethod
    def _merge_actions(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("actions"), dict):
            return {**data, "actions": deep_merge(DEFAULT_ACTIONS, data["actions"])}
        return data


_LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]


PiiType = Literal["email", "phone", "ip", "card", "iban", "secret"]
_ALL_PII: list[PiiType] = ["email", "phone", "ip", "card", "iban", "secret"]


class PiiConfig(_Strict):
    """PII redaction in the `safety` stage (jobs/safety/pii.py): each detected span of `types` is
    replaced by a typed placeholder (`<EMAIL>`), counted per type and source. `flag` annotates the
    spans without changing the text. Social posts' `social.author` and `social.mentions` are
    pseudonymised with a keyed hash (HMAC-SHA256) whose key comes from the environment variable
    named by `key_env` (config-only), never from a param; without it, a random per-home key file."""

    enabled: bool = True
    types: list[PiiType] = Field(default_factory=lambda: list(_ALL_PII), max_length=6)
    action: Literal["redact", "flag"] = "redact"
    # National formats are read for these regions; "+CC ..." international numbers for every region.
    phone_regions: list[Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]] = Field(
        ["US", "GB", "DE", "FR", "IN"], max_length=50
    )
    pseudonymise: bool = True  # social.author and social.mentions as keyed hashes
    key_env: str = Field("LMFORGE_PII_KEY", pattern=r"^[A-Z_][A-Z0-9_]{0,63}$")  # config-only
    max_chars: int = Field(1_000_000, ge=1, le=10**9)  # examined per document; the rest kept, counted


class ToxicityConfig(_Strict):
    """Toxicity scoring in the `safety` stage (jobs/safety/toxicity.py): a lexicon score from the
    word lists glin-profanity 4.1.0 ships (24 languages), and, when `model` names a location, the
    probability of hate or offensive language from a classifier trained with `lmforge toxicity train`
    (jobs/safety/toxicity_model.py). Every document gets `toxicity.score` and, at or above
    `flag_threshold`, `toxicity.flag`; `drop_above` drops by source type (none by default: a flag
    lets the mixture decide, and a tweet corpus about hate speech must keep its examples)."""

    enabled: bool = True
    model: str | None = None  # a name in `locations`
    model_path: str | None = None  # config-only: set from `model`
    model_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    flag_threshold: float = Field(0.5, ge=0, le=1)
    drop_above: dict[SourceTypeName, Annotated[float, Field(ge=0, le=1)]] = Field({}, max_length=6)
    # The opening of a document is scored: character n-grams cost about 3.5 ms per 1,000 characters,
    # and a book's first 20,000 characters (3,500 words) say as much about its register as the rest.
    max_chars: int = Field(20_000, ge=1, le=10**9)


class DecontamConfig(_Strict):
    """Benchmark decontamination (jobs/safety/decontam.py): word n-gram overlap (13-grams, GPT-3:
    Brown et al. 2020, appendix C) with the evaluation sets in `evals` (a location: a folder of
    JSONL, CSV and text files, one benchmark per file). `drop` rejects a document with a hit, `cut`
    removes the overlapping spans, `flag` annotates only."""

    evals: str | None = None  # a name in `locations`
    evals_path: str | None = None  # config-only: set from `evals`
    ngram: int = Field(13, ge=5, le=64)
    min_hits: int = Field(1, ge=1, le=10_000)  # matched n-grams for a document to count as a hit
    action: Literal["drop", "cut", "flag"] = "drop"
    max_eval_bytes: int = Field(1 << 30, ge=1, le=1 << 40)  # all evaluation files together
    max_chars: int = Field(1 << 20, ge=1, le=10**9)  # examined per document


class DiversityConfig(_Strict):
    """Bias and diversity report and its gates (the `diversity` stage, jobs/safety/diversity.py):
    distributions by source, domain, language, length and topic cluster, demographic-term statistics,
    distinct n-gram ratio and domain entropy per source. Gates (Great Expectations, mode from
    `validation`): no domain above `max_domain_share`, each listed source and language at least its
    share. 1.0 and empty maps leave the gates informative only."""

    topics: int = Field(8, ge=2, le=256)  # k-means clusters over TF-IDF reduced by truncated SVD
    topic_sample: int = Field(20_000, ge=10, le=10_000_000)  # documents clustered (a seeded sample)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    ngram: int = Field(3, ge=1, le=8)  # distinct word n-gram ratio
    max_domain_share: float = Field(1.0, gt=0, le=1)
    min_source_shares: dict[SourceTypeName, Annotated[float, Field(ge=0, le=1)]] = Field({}, max_length=6)
    min_language_shares: dict[_LanguageCode, Annotated[float, Field(ge=0, le=1)]] = Field({}, max_length=500)


class MinHashConfig(_Strict):
    """MinHash LSH near-dedup (jobs/dedup/minhash.py). Defaults follow FineWeb (Penedo et al. 2024, section
    3.3 and datatrove's `MinhashConfig`): word 5-grams, 112 permutations, and text normalised as
    datatrove's `simplify_text` does (lowercase, punctuation removed, whitespace collapsed).

    `bands`/`rows` None: derived from `threshold` so the LSH hit probability there is at least
    `min_hit_probability` (jobs/dedup/minhash.py `choose_bands_rows`; FineWeb's fixed 14x8 gives 0.92 at
    J=0.8). Candidates are verified by exact Jaccard on shingle sets (`exact`) or by the share of
    equal signature slots (`estimate`, Broder 1997). A band bucket with more than `max_bucket_size`
    documents is emitted as a star around its smallest id instead of all pairs: the same connected
    component, linear instead of quadratic pairs (only star edges that pass verification survive).
    """

    shingle: Literal["word", "char"] = "word"
    ngram: int = Field(5, ge=1, le=64)  # FineWeb: word 5-grams
    num_perm: int = Field(112, ge=2, le=1024)  # FineWeb: 14 buckets x 8 hashes
    threshold: float = Field(0.8, gt=0, lt=1)  # FineWeb's 75% at 14x8; Lee et al. (2022): 0.8
    min_hit_probability: float = Field(0.9, gt=0, lt=1)
    bands: int | None = Field(None, ge=1, le=1024)
    rows: int | None = Field(None, ge=1, le=1024)
    seed: int = Field(1, ge=0, le=2**32 - 1)  # datasketch's default MinHash seed
    verify: Literal["exact", "estimate"] = "exact"
    max_bucket_size: int = Field(1000, ge=2, le=10**7)
    lowercase: bool = True
    strip_punctuation: bool = True  # Unicode punctuation and symbols (categories P*, S*)
    normalize_numbers: bool = True  # digits -> 0, as datatrove's simplify_text

    @model_validator(mode="after")
    def _bands_rows(self) -> MinHashConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both 'bands' and 'rows' or neither")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


DocumentSource = Literal["web", "book", "code", "paper", "social", "synthetic"]  # core/schema.py


class DedupConfig(_Strict):
    """Exact dedup (jobs/dedup/exact.py) and the optional C4-style removal of repeated lines
    (jobs/dedup/lines.py): a line whose normalised text occurs more than once across the open
    documents is kept only at its first (document id, line number), as C4 keeps one copy (Raffel
    et al. 2020, section 2.2; tfds `c4_utils.remove_duplicate_text`). C4 and CCNet (Wenzek et al.
    2020, section 3.1, repeated paragraphs) apply it to web text, so `line_sources` defaults to web
    only: removing repeated lines from code (imports, `}`) or books would break them.

    `line_min_chars`: shorter normalised lines are never removed. C4's line dedup only ever saw
    lines of at least 5 words (`_MIN_WORDS_PER_LINE = 5`, applied before it); we count characters
    so unspaced scripts work, and 5 English words of mean length ~4.7 plus 4 spaces is about 28,
    hence 30. Headings, blank lines and `Home`-like menu items stay.
    """

    repeated_lines: bool = False
    line_min_chars: int = Field(30, ge=1, le=100_000)
    line_sources: list[DocumentSource] = Field(["web"], min_length=1)


class TokenizerConfig(_Strict):
    vocab_size: int = Field(8192, ge=300, le=65_535)  # shards store uint16 ids
    min_frequency: int = Field(2, ge=1, le=10**9)
    max_training_docs: int = Field(20_000, ge=1, le=10**9)


class ShardConfig(_Strict):
    """Token shards (jobs/tokens/shards.py): the validation split by document hash, a global seeded
    shuffle, shards of at most `max_shard_tokens`, a sha256 per block of `block_tokens` tokens so a
    ranged read can be verified without reading the whole shard."""

    val_fraction: float = Field(0.05, ge=0, lt=1)
    max_shard_tokens: int = Field(50_000_000, ge=1, le=10**12)
    shuffle_seed: int = Field(0, ge=0, le=2**32 - 1)
    block_tokens: int = Field(1 << 20, ge=1024, le=1 << 30)


class MixtureConfig(_Strict):
    """Mixture weights (training split only): a weight multiplies a source's natural token count;
    above 1 documents repeat (whole copies, then a seeded sample for the fraction), below 1 a seeded
    sample is kept. No document repeats more than `max_repeats` times: Muennighoff et al. (2023,
    "Scaling Data-Constrained Language Models", section 5) find up to 4 epochs of repeated data
    nearly as good as unique data, with returns vanishing beyond about 16."""

    weights: dict[SourceTypeName, Annotated[float, Field(ge=0, le=1000)]] = Field({}, max_length=6)
    language_weights: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")], Annotated[float, Field(ge=0, le=1000)]
    ] = Field({}, max_length=500)
    max_repeats: float = Field(4.0, ge=1, le=1000)
    seed: int = Field(0, ge=0, le=2**32 - 1)


class PublishConfig(_Strict):
    """Where the final shards, tokenizer and manifest are published (jobs/publish.py). `uri` is the
    deployment's choice (config-only): an `s3://bucket/prefix/` or a local folder; None publishes in
    place (the committed shards are the published dataset). Uploads use boto3's TransferConfig."""

    uri: str | None = Field(None, max_length=2000)
    multipart_threshold_mb: int = Field(64, ge=5, le=5 * 1024)  # S3: parts of at least 5 MiB
    multipart_chunksize_mb: int = Field(16, ge=5, le=5 * 1024)
    max_concurrency: int = Field(8, ge=1, le=64)
    verify: Literal["checksum", "reread"] = "checksum"


class TrainConfig(_Strict):
    """Pretraining run (training/). Objectives and their defaults: training/objectives.py;
    parallelism: training/parallel.py and training/pipeline.py; MFU: training/metrics.py.

    `batch_size` is per worker and per micro-step; a step sees batch_size * grad_accum * workers
    sequences. `token_budget` (raw text tokens consumed: span corruption counts its raw span, not padded
    positions), when set, fixes `steps` from that.
    `precision` bf16 means autocast on GPU (CPU runs stay fp32: CPU autocast is slow there).
    Prefix tuning (`mode`) freezes the model loaded from `init_from` (a checkpoint directory
    holding state.pt) and learns `prefix_length` key/value vectors per layer through an MLP of
    width `prefix_hidden` (Li & Liang 2021).
    """

    objective: Literal["causal", "mlm", "span", "prefix_lm", "contrastive"] = "causal"
    mode: Literal["pretrain", "prefix_tuning"] = "pretrain"
    init_from: str | None = None  # a path: config-only (a param names `init_location`)
    init_location: str | None = None  # a name in `locations`, replacing init_from when set
    model_size: Literal["tiny", "small", "gpt2-small", "gpt2-medium", "1b"] = "tiny"
    # Explicit shape overriding the preset's (a scaling-law sweep's ladder of sizes); None: the preset's.
    n_layer: int | None = Field(None, ge=1, le=512)
    n_head: int | None = Field(None, ge=1, le=512)
    n_embd: int | None = Field(None, ge=8, le=65_536)
    seq_len: int = Field(128, ge=8, le=8192)
    batch_size: int = Field(8, ge=1, le=65_536)
    grad_accum: int = Field(1, ge=1, le=4096)
    steps: int = Field(150, ge=1, le=10**9)
    token_budget: int | None = Field(None, ge=1, le=10**15)
    lr: float = Field(3e-3, gt=0, le=1)
    warmup_steps: int = Field(10, ge=0, le=10**9)
    weight_decay: float = Field(0.1, ge=0, le=10)
    grad_clip: float = Field(1.0, gt=0, le=10**6)
    parallelism: Literal["ddp", "fsdp", "pipeline"] = "ddp"
    pipeline_schedule: Literal["1F1B", "GPipe"] = "1F1B"
    pipeline_microbatches: int = Field(4, ge=1, le=4096)
    precision: Literal["fp32", "bf16"] = "bf16"
    compile: bool = False
    dropout: float = Field(0.0, ge=0, lt=1)  # contrastive learning needs > 0 (SimCSE: 0.1)
    mlm_probability: float = Field(0.15, gt=0, lt=1)  # BERT (Devlin et al. 2019)
    span_noise_density: float = Field(0.15, gt=0, lt=1)  # T5 (Raffel et al. 2020)
    span_mean_length: float = Field(3.0, ge=1, le=1000)  # T5
    contrastive_temperature: float = Field(0.05, gt=0, le=100)  # SimCSE (Gao et al. 2021)
    prefix_length: int = Field(10, ge=1, le=4096)  # Li & Liang (2021) table/summarisation: 10-200
    prefix_hidden: int = Field(512, ge=1, le=65_536)  # Li & Liang (2021): reparameterisation MLP width 512
    checkpoint_every: int = Field(50, ge=1, le=10**9)
    log_every: int = Field(10, ge=1, le=10**9)
    eval_batches: int = Field(4, ge=1, le=100_000)
    # validation loss every this many steps (and at the last); 0: at the last step only
    eval_every: int = Field(0, ge=0, le=10**9)
    max_failures: int = Field(2, ge=0, le=100)  # Ray Train FailureConfig retries from the last checkpoint
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.mode == "prefix_tuning" and not self.init_from:
            raise ValueError("mode 'prefix_tuning' needs 'init_from', a pretrained checkpoint directory")
        if self.parallelism == "pipeline" and (self.objective != "causal" or self.mode != "pretrain"):
            raise ValueError("parallelism 'pipeline' supports objective 'causal' in mode 'pretrain' only")
        if self.objective == "contrastive" and self.dropout == 0:
            raise ValueError("objective 'contrastive' needs dropout > 0 (SimCSE uses 0.1)")
        return self


class ScalingConfig(_Strict):
    """A scaling-law sweep (dags/scaling.py, training/scaling/): one causal-LM run per point.

    `isoflop` (Hoffmann et al. 2022, approach 2): for each compute budget C in `budgets`, `sizes_per_budget`
    model sizes spread log-uniformly over [`min_params`, `max_params`] that fit, each trained on
    D = C / (6 N) tokens. `grid`: every size in `model_sizes` (non-embedding parameters) times every
    token count in `tokens`. Models are shaped by `training/scaling/` (depth and width ratios); the rest
    of the run is `train`. `max_points` bounds a sweep. `bootstrap` resamples for the intervals
    (Besiroglu et al. 2024 use bootstrap intervals too), seeded by `seed`."""

    design: Literal["isoflop", "grid"] = "isoflop"
    budgets: list[Annotated[float, Field(gt=0, le=1e27)]] = Field([1e12, 3e12, 1e13], max_length=64)
    sizes_per_budget: int = Field(5, ge=3, le=64)
    min_params: int = Field(20_000, ge=1_000, le=10**13)
    max_params: int = Field(2_000_000, ge=1_000, le=10**13)
    model_sizes: list[Annotated[int, Field(ge=1_000, le=10**13)]] = Field([], max_length=64)
    tokens: list[Annotated[int, Field(ge=1_000, le=10**15)]] = Field([], max_length=64)
    eval_every: int = Field(20, ge=1, le=10**9)
    max_points: int = Field(40, ge=1, le=10_000)
    bootstrap: int = Field(200, ge=0, le=100_000)
    seed: int = Field(0, ge=0, le=2**32 - 1)


GateMode = Literal["fail", "warn", "off"]


class StageGate(_Strict):
    """One stage's overrides of the `validate` defaults (None keeps the default)."""

    mode: GateMode | None = None
    min_text_chars: int | None = Field(None, ge=0, le=10**9)
    max_text_chars: int | None = Field(None, ge=1, le=10**10)
    max_duplicate_rate: float | None = Field(None, ge=0, le=1)
    min_language_share: float | None = Field(None, ge=0, le=1)
    min_language_shares: dict[_LanguageCode, Annotated[float, Field(ge=0, le=1)]] | None = Field(
        None, max_length=500
    )
    max_unknown_license_share: float | None = Field(None, ge=0, le=1)
    max_domain_share: float | None = Field(None, ge=0, le=1)
    min_train_tokens: int | None = Field(None, ge=0, le=10**15)


class ValidateConfig(_Strict):
    """Great Expectations gates at every stage boundary (jobs/validate/). `mode`: `fail` stops the
    stage before its commit, `warn` commits and records the failures, `off` skips the gate. The
    thresholds are defaults for every stage; `stages` overrides them per stage. `max_rows` bounds
    the rows a gate reads per part (beyond it, the first `max_rows` rows are checked and the result
    says `sampled`); `sample_rows` is how many offending ids a failure names. A share of 1.0 (or a
    minimum of 0) leaves a check informative only: it still reports the observed value."""

    mode: GateMode = "fail"
    sample_rows: int = Field(5, ge=0, le=100)
    max_rows: int = Field(5_000_000, ge=1, le=10**9)
    data_docs: bool = True
    min_text_chars: int = Field(1, ge=0, le=10**9)  # from extract on: no empty documents
    max_text_chars: int = Field(100_000_000, ge=1, le=10**10)
    max_duplicate_rate: float = Field(0.0, ge=0, le=1)  # kept rows sharing a normalised-text hash
    min_language_share: float = Field(0.5, ge=0, le=1)  # quality: documents with a language
    min_language_shares: dict[_LanguageCode, Annotated[float, Field(ge=0, le=1)]] = Field({}, max_length=500)
    max_unknown_license_share: float = Field(1.0, ge=0, le=1)  # copyright: class `unknown`
    max_domain_share: float = Field(1.0, ge=0, le=1)  # the largest single domain's share (1.0: off)
    min_train_tokens: int = Field(1, ge=0, le=10**15)  # shards
    stages: dict[str, StageGate] = Field({}, max_length=64)

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, value: dict[str, StageGate]) -> dict[str, StageGate]:
        from core.registry import STAGES

        if unknown := sorted(set(value) - set(STAGES)):
            raise ValueError(f"unknown stage(s) {unknown}; known: {', '.join(STAGES)}")
        return value

    def for_stage(self, name: str) -> ValidateConfig:
        """The settings one stage's gate runs with: the defaults, then its `stages` entry."""
        gate = self.stages.get(name)
        update = {} if gate is None else {k: v for k, v in gate.model_dump().items() if v is not None}
        return self.model_copy(update={**update, "stages": {}})


LOCATION_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class PipelineConfig(_Strict):
    """`locations` names local folders and files (sources, WARC dumps, checkpoints) so that a trigger
    param picks a name and never a path (core/overrides.py)."""

    profile: str = "local"
    locations: dict[Annotated[str, StringConstraints(pattern=LOCATION_NAME)], str] = Field(
        {}, max_length=10_000
    )
    storage: StorageConfig = StorageConfig()
    spark: SparkConfig = SparkConfig()
    ray: RayConfig = RayConfig()
    crawl: CrawlConfig = CrawlConfig()
    sources: SourcesConfig = SourcesConfig()
    warc: WarcConfig = WarcConfig()
    extract: ExtractConfig = ExtractConfig()
    quality: QualityConfig = QualityConfig()
    copyright: CopyrightConfig = CopyrightConfig()
    pii: PiiConfig = PiiConfig()
    toxicity: ToxicityConfig = ToxicityConfig()
    decontam: DecontamConfig = DecontamConfig()
    diversity: DiversityConfig = DiversityConfig()
    dedup: DedupConfig = DedupConfig()
    minhash: MinHashConfig = MinHashConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    shards: ShardConfig = ShardConfig()
    mixture: MixtureConfig = MixtureConfig()
    publish: PublishConfig = PublishConfig()
    train: TrainConfig = TrainConfig()
    scaling: ScalingConfig = ScalingConfig()
    validation: ValidateConfig = ValidateConfig()  # `validate` would shadow BaseModel.validate


PROFILES: dict[str, dict[str, Any]] = {
    # Embedded default: Spark local[*], a local Ray, the git-ignored .data/ folder.
    "local": {"crawl": {"allow_loopback": True}},
    # docker-compose stack: MinIO, a Spark standalone master, a Ray head (filled in by later issues).
    "compose": {
        "storage": {"root": "s3://lmforge/", "endpoint_url": "http://minio:9000"},
        "spark": {"master": "spark://spark-master:7077"},
        "ray": {"address": "ray://ray-head:10001"},
    },
    # A real cluster: values come from the environment / overrides file.
    "cluster": {"ray": {"use_gpu": True}},
}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "<root>"
        got = "" if e["type"] == "missing" else f" (got {e.get('input')!r})"
        lines.append(f"config field '{field}': {e['msg']}{got}")
    return "; ".join(lines)


def load_config(profile: str | None = None, overrides: dict[str, Any] | str | None = None) -> PipelineConfig:
    """Build the config for `profile` (env `LMFORGE_PROFILE`, default `local`) plus overrides.

    Overrides may be a nested dict or its JSON text; env `LMFORGE_CONFIG` may name a JSON file
    applied between the profile and the overrides.
    """
    name = profile or os.environ.get("LMFORGE_PROFILE", "local")
    if name not in PROFILES:
        raise ConfigError(f"config field 'profile': unknown profile {name!r}; known: {sorted(PROFILES)}")
    data = deep_merge({"profile": name}, PROFILES[name])
    if path := os.environ.get("LMFORGE_CONFIG"):
        data = deep_merge(data, _parse(Path(path).read_text(), source=path))
    if overrides:
        data = deep_merge(
            data, _parse(overrides, source="overrides") if isinstance(overrides, str) else overrides
        )
    data = resolve_locations(data)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err)) from None


# name field -> (section, path field, one path or a list)
_NAMED = {
    ("sources", "books"): ("books_dir", False),
    ("sources", "code"): ("code_dir", False),
    ("sources", "papers"): ("papers_dir", False),
    ("sources", "social"): ("social_paths", True),
    ("warc", "use"): ("paths", True),
    ("train", "init_location"): ("init_from", False),
    ("quality", "classifier_model"): ("classifier_model_path", False),
    ("copyright", "optout_registry"): ("optout_registry_path", False),
    ("copyright", "blocklist"): ("blocklist_path", False),
    ("copyright", "protected_works"): ("protected_works_path", False),
    ("toxicity", "model"): ("model_path", False),
    ("decontam", "evals"): ("evals_path", False),
}


def resolve_locations(data: dict[str, Any]) -> dict[str, Any]:
    """Replace the path fields that a location name is given for, from `locations`."""
    locations = data.get("locations") or {}
    out = copy.deepcopy(data)
    for (section, field), (path_field, many) in _NAMED.items():
        names = (out.get(section) or {}).get(field)
        if not names:
            continue
        for name in names if many else [names]:
            if not isinstance(name, str) or name not in locations:
                known = ", ".join(sorted(locations)) or "none: define them in the deployment's config"
                raise ConfigError(
                    f"config field '{section}.{field}': unknown location {name!r}; known: {known}"
                )
        paths = [locations[n] for n in names] if many else locations[names]
        out[section][path_field] = paths
    return out


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"config {source}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"config {source}: expected a JSON object, got {type(value).__name__}")
    return value
