"""The licence policy: classes from ScanCode's categories, SPDX precedence in expressions, actions per
source type, and the one ranking the near-dedup keeper uses."""

from __future__ import annotations

import pytest

from core.config import ConfigError, load_config
from core.copyright_policy import CLASS_ORDER, DEFAULT_ACTIONS
from core.schema import SOURCE_TYPES
from jobs.copyright.policy import categories, classify, rank, spdx_from_name
from jobs.dedup.near import license_rank


@pytest.mark.parametrize(
    ("expression", "cls"),
    [
        ("CC0-1.0", "public_domain"),
        ("Unlicense", "public_domain"),
        ("LicenseRef-Public-Domain", "public_domain"),
        ("MIT", "permissive"),
        ("BSD-3-Clause", "permissive"),
        ("Apache-2.0", "permissive"),
        ("CC-BY-4.0", "permissive"),
        ("PSF-2.0", "permissive"),
        ("LGPL-2.1-or-later", "weak_copyleft"),
        ("MPL-2.0", "weak_copyleft"),
        ("CC-BY-SA-4.0", "weak_copyleft"),
        ("GPL-2.0-only", "strong_copyleft"),
        ("GPL-2.0+", "strong_copyleft"),  # deprecated spelling: the class of its base
        ("AGPL-3.0-or-later", "strong_copyleft"),
        ("CC-BY-NC-4.0", "nc_nd"),
        ("CC-BY-ND-4.0", "nc_nd"),
        ("CC-BY-NC-SA-3.0", "nc_nd"),
        ("BUSL-1.1", "nc_nd"),
        ("LicenseRef-Proprietary", "unknown"),
        ("NoSuchLicense-1.0", "unknown"),
        (None, "unknown"),
        ("", "unknown"),
    ],
)
def test_classes_from_scancode_categories(expression: str | None, cls: str) -> None:
    assert classify(expression) == cls


@pytest.mark.parametrize(
    ("expression", "cls"),
    [
        ("MIT OR GPL-3.0-only", "permissive"),  # the user may choose: the less restrictive
        ("MIT AND GPL-3.0-only", "strong_copyleft"),  # both bind: the more restrictive
        ("GPL-2.0-or-later WITH Classpath-exception-2.0", "weak_copyleft"),
        ("GPL-3.0-or-later WITH GCC-exception-3.1", "weak_copyleft"),
        ("(MIT OR Apache-2.0) AND CC-BY-NC-4.0", "nc_nd"),
        ("MIT OR Apache-2.0 AND CC-BY-NC-4.0", "permissive"),  # AND binds tighter than OR (annex D.4)
        ("(MIT", "unknown"),  # unbalanced: unparsable is unknown, never a guess
        ("MIT AND", "unknown"),
        ("AND MIT", "unknown"),
    ],
)
def test_expressions_follow_spdx_precedence(expression: str, cls: str) -> None:
    assert classify(expression) == cls


def test_database_covers_the_spdx_list() -> None:
    table = categories()
    assert len(table) > 600
    assert set(table.values()) <= set(CLASS_ORDER)
    assert {table[k] for k in ("gpl-2.0", "gpl-2.0-only", "gpl-2.0-or-later")} == {"strong_copyleft"}


def test_keeper_rank_is_the_policy_order() -> None:
    for expression in ("CC0-1.0", "MIT", "LGPL-2.1-only", "GPL-3.0-only", "CC-BY-NC-4.0", None):
        assert license_rank(expression) == rank(expression) == CLASS_ORDER.index(classify(expression))
    assert [rank(e) for e in ("CC0-1.0", "MIT", "MPL-2.0", "GPL-3.0-only", "CC-BY-ND-4.0", None)] == [
        0, 1, 2, 3, 4, 6
    ]  # fmt: skip


def test_default_actions_cover_every_source_and_class() -> None:
    assert set(DEFAULT_ACTIONS) == set(SOURCE_TYPES)
    for source, row in DEFAULT_ACTIONS.items():
        assert list(row) == list(CLASS_ORDER), source
    code = DEFAULT_ACTIONS["code"]  # The Stack: permissive and public domain only
    assert [c for c, a in code.items() if a == "keep"] == ["public_domain", "permissive"]
    assert all(row["nc_nd"] in ("drop", "flag") for row in DEFAULT_ACTIONS.values())


def test_actions_merge_over_the_defaults_and_bad_values_fail_at_load() -> None:
    cfg = load_config("local", {"copyright": {"actions": {"web": {"unknown": "flag"}}}})
    assert cfg.copyright.actions["web"]["unknown"] == "flag"
    assert cfg.copyright.actions["web"]["nc_nd"] == "drop"  # the rest of the row is the default's
    assert cfg.copyright.actions["code"] == DEFAULT_ACTIONS["code"]
    with pytest.raises(ConfigError, match=r"copyright\.actions\.web\.unknown"):
        load_config("local", {"copyright": {"actions": {"web": {"unknown": "burn"}}}})
    with pytest.raises(ConfigError, match=r"copyright\.actions\.video"):
        load_config("local", {"copyright": {"actions": {"video": {"unknown": "keep"}}}})


@pytest.mark.parametrize(
    ("declared", "expression"),
    [
        ("Apache License 2.0", "Apache-2.0"),
        ("Apache License, Version 2.0", "Apache-2.0"),
        ("MIT License", "MIT"),
        ("MIT -or- Apache License 2.0", "MIT OR Apache-2.0"),  # as a package's METADATA says it
        ("Mozilla Public License 2.0", "MPL-2.0"),
        ("bsd-3-clause", "BSD-3-Clause"),
        ("BSD", None),  # which BSD? ambiguous stays unknown
        ("GPLv3", None),
        ("Weird License", None),
    ],
)
def test_licence_names_from_the_database(declared: str, expression: str | None) -> None:
    assert spdx_from_name(declared) == expression


def test_versionless_creative_commons_families() -> None:
    """Papers name "Creative Commons Attribution License" without a version (`CC-BY`)."""
    assert [classify(f) for f in ("CC-BY", "CC-BY-SA", "CC-BY-NC", "CC-BY-ND", "CC-BY-NC-SA")] == [
        "permissive", "weak_copyleft", "nc_nd", "nc_nd", "nc_nd"
    ]  # fmt: skip
