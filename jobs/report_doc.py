"""The data report as a small document model, rendered to Markdown and to HTML from the same blocks so
the two views cannot disagree. A chart is a PNG file in the report folder referenced by relative path:
both files stay small, the charts stay plain PNGs (the summary lists them), and the folder works as is
on local disk or copied out of S3."""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Link:
    text: str
    href: str  # relative to the report folder


Cell = str | int | float | Link | None


@dataclass
class Table:
    header: list[str]
    rows: list[list[Cell]]


@dataclass
class Chart:
    file: str  # relative to the report folder
    caption: str


Block = str | Table | Chart | Link


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


def cell(value: Cell) -> str:
    """Integers (and floats from 1,000) with thousands separators, other floats to 4 significant
    digits, None as a dash."""
    if isinstance(value, Link):
        return value.text
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return value


def _href(href: str) -> str:
    """A Markdown link target; one with spaces or parentheses goes in angle brackets (CommonMark)."""
    return f"<{href}>" if any(ch in href for ch in " ()") else href


def _md_cell(c: Cell) -> str:
    text = f"[{c.text}]({_href(c.href)})" if isinstance(c, Link) else cell(c)
    return " ".join(text.splitlines())  # a table row is one line


def _html_cell(c: Cell) -> str:
    e = html.escape
    return f'<a href="{e(c.href)}">{e(c.text)}</a>' if isinstance(c, Link) else e(cell(c))


def _md_table(t: Table) -> list[str]:
    esc = [[_md_cell(c).replace("|", "\\|") for c in row] for row in t.rows]
    lines = ["| " + " | ".join(t.header) + " |", "|" + "---|" * len(t.header)]
    return lines + ["| " + " | ".join(row) + " |" for row in esc]


def _md_block(b: Block) -> list[str]:
    if isinstance(b, Table):
        return _md_table(b) if b.rows else ["(none)"]
    if isinstance(b, Chart):
        return [f"![{b.caption}]({_href(b.file)})"]
    if isinstance(b, Link):
        return [_md_cell(b)]
    return [b]


def to_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}"]
    for s in sections:
        lines += ["", f"## {s.title}"]
        for b in s.blocks:
            lines += ["", *_md_block(b)]
    return "\n".join(lines) + "\n"


def _html_block(b: Block) -> str:
    e = html.escape
    if isinstance(b, Table) and not b.rows:
        return "<p>(none)</p>"
    if isinstance(b, Table):
        head = "".join(f"<th>{e(h)}</th>" for h in b.header)
        body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>" for row in b.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(b, Chart):
        img = f'<img src="{e(b.file)}" alt="{e(b.caption)}">'
        return f"<figure>{img}<figcaption>{e(b.caption)}</figcaption></figure>"
    if isinstance(b, Link):
        return f"<p>{_html_cell(b)}</p>"
    return f"<p>{e(b)}</p>"


_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:2px 8px}"
    "td{text-align:right}td:first-child{text-align:left}th{background:#f0f0f0}"
    "img{max-width:100%}figcaption{font-size:.85em;color:#555}"
)


def to_html(title: str, sections: list[Section]) -> str:
    """One self-contained page (inline style, no scripts); images by relative path."""
    parts = [
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    for s in sections:
        parts.append(f"<section><h2>{html.escape(s.title)}</h2>")
        parts += [_html_block(b) for b in s.blocks]
        parts.append("</section>")
    return "\n".join([*parts, "</body></html>"]) + "\n"
