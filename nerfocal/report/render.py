"""Render report blocks (:mod:`nerfocal.report.blocks`) to one self-contained HTML page or to Markdown."""

from __future__ import annotations

import base64
import html

from nerfocal.entities_html import CSS as ENTITY_CSS
from nerfocal.report.blocks import Block, Code, Heading, Html, Image, Table, Text

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f2f2f2; }
td { font-variant-numeric: tabular-nums; }
img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; }
"""


def render_html(blocks: list[Block]) -> str:
    """One self-contained HTML page: styles inline, images as base64 data URIs."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "nerfocal report")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}{ENTITY_CSS}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Text):
            parts.append(f"<p>{_inline_html(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.data).decode("ascii")
            parts.append(f'<p><img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}"></p>')
        elif isinstance(block, Html):
            parts.append(block.html)
        elif isinstance(block, Code):
            pre = f"<pre>{html.escape(block.text)}</pre>"
            parts.append(
                f"<details><summary>{html.escape(block.summary)}</summary>{pre}</details>"
                if block.summary
                else pre
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_markdown(blocks: list[Block], image_dir: str = "report") -> str:
    """Markdown with relative image links into ``image_dir`` (where the PNG files were written)."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Text):
            parts.append(block.text)
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(_cell(h) for h in block.header) + " |"]
            lines.append("|" + "---|" * len(block.header))
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in block.rows]
            parts.append("\n".join(lines))
        elif isinstance(block, Image):
            parts.append(f"![{block.alt}]({image_dir}/{block.name})")
        elif isinstance(block, Html):
            table = block.fallback
            lines = ["| " + " | ".join(_cell(h) for h in table.header) + " |"]
            lines.append("|" + "---|" * len(table.header))
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
            parts.append("\n".join(lines))
        elif isinstance(block, Code):
            fenced = f"```\n{block.text.rstrip()}\n```"
            parts.append(
                f"<details><summary>{block.summary}</summary>\n\n{fenced}\n\n</details>"
                if block.summary
                else fenced
            )
    return "\n\n".join(parts) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _inline_html(text: str) -> str:
    """Escape, then render the two inline marks the blocks use: **bold** and `code`."""
    out = html.escape(text)
    if out.startswith("**") and out.endswith("**") and len(out) > 4:
        out = f"<b>{out[2:-2]}</b>"
    pieces = out.split("`")
    if len(pieces) % 2 == 1:
        out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))
    return out
