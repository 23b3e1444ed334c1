"""Copyright notices with holder and years, on the notice shapes of real files."""

from __future__ import annotations

from jobs.copyright.notices import notices


def test_notices_holders_and_years() -> None:
    cases = {
        "Copyright (c) 2019-2021 Jane Doe": ("Jane Doe", (2019, 2020, 2021), False),
        "Copyright 2004 Free Software Foundation, Inc.": ("Free Software Foundation, Inc.", (2004,), False),
        " * (C) 1998, 2001-03 ACME Corp. All rights reserved.": ("ACME Corp", (1998, 2001, 2002, 2003), True),
        "# © 2020 Foo Bar": ("Foo Bar", (2020,), False),
    }
    for text, (holder, years, reserved) in cases.items():
        found = list(notices(text))
        assert len(found) == 1, text
        assert (found[0].holder, found[0].years, found[0].all_rights_reserved) == (holder, years, reserved)


def test_prose_about_copyright_is_not_a_notice() -> None:
    for text in ["the copyright holders and contributors", "under copyright law", "copyright notice below"]:
        assert list(notices(text)) == [], text
