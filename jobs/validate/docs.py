"""A GX context for one gate, with its Data Docs site in a folder we choose.

Ephemeral (nothing written but the site): the suites live in code, so a file context would only
keep copies of them. The site's fonts and images (4 MB, the same for every stage) are removed
after the build: the pages only need their HTML and stylesheets, and each stage commits its site.

Speed: GX's page views each build a fresh Jinja environment and so compile their ~50 templates on
every build (1.3 of a build's 1.5 s on the demo). `_cache_templates` gives those environments one
bytecode cache in this user's cache folder, which cuts a build to about 0.15 s; it only sets the
environment's documented `bytecode_cache` attribute, and without the view class it does nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

SITE = "lmforge"
INDEX = "index.html"


def _cache_templates() -> None:
    from jinja2 import FileSystemBytecodeCache

    from core.datasets import default_cache_root

    try:
        from great_expectations.render.view.view import DefaultJinjaView
    except ImportError:
        return
    if getattr(DefaultJinjaView, "_lmforge_cached", False):
        return
    folder = default_cache_root() / "gx-jinja"
    folder.mkdir(mode=0o700, exist_ok=True)
    cache, init = FileSystemBytecodeCache(str(folder)), DefaultJinjaView.__init__

    def cached_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.env.bytecode_cache = cache

    DefaultJinjaView.__init__ = cached_init  # type: ignore[method-assign]
    DefaultJinjaView._lmforge_cached = True  # type: ignore[attr-defined]


def context(site_dir: Path | None) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _cache_templates()
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    if site_dir is not None:
        ctx.add_data_docs_site(
            SITE,
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(site_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "show_cta_footer": False},
            },
        )
    return ctx


def build(ctx: Any, site_dir: Path) -> Path:
    """Render every stored validation result and suite; returns the index page."""
    ctx.build_data_docs(site_names=[SITE])
    for heavy in ("fonts", "images"):
        shutil.rmtree(site_dir / "static" / heavy, ignore_errors=True)
    return site_dir / INDEX
