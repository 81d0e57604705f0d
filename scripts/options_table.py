"""Print the Markdown table of nerfocal's own training options (the README's "Options" section).

    python scripts/options_table.py

tests/test_readme.py checks that the README holds exactly this table, so the two never drift apart.
"""

from __future__ import annotations

import dataclasses
import sys

from nerfocal.config import CONFIG_CLASSES, NerTrainingArguments


def options_table() -> str:
    lines = ["| option (YAML key / `--flag`) | default | meaning |", "|---|---|---|"]
    for cls in (*CONFIG_CLASSES, NerTrainingArguments):
        for f in dataclasses.fields(cls):
            if cls is NerTrainingArguments and f.name not in NerTrainingArguments.__annotations__:
                continue  # transformers' own options keep transformers' defaults and help
            if not f.init:
                continue  # state set by nerfocal (default_schedule), not an option
            default = f.default if f.default is not dataclasses.MISSING else ""
            if f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            text = " ".join(str(f.metadata.get("help", "")).split()).replace("|", "\\|")
            lines.append(f"| `{f.name}` ({cls.__name__}) | `{default}` | {text} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(options_table() + "\n")
