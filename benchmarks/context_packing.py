"""What ``--context-pack`` costs and saves: one model trained with document context, read several ways.

    python benchmarks/benchmark.py context-pack --model DIR [--packs 0 32 64 126] [--limit N]

DIR is a model trained with ``context_size`` > 0 on CoNLL-2003 (for instance
``nerfocal train ... --context_size 64``). The CoNLL-2003 test set is read with its ``-DOCSTART-``
documents by :class:`nerfocal.Predictor` (Viterbi, the CLI's default) once without context
(``context_size 0``) and once per ``--packs`` value (``context_pack``; 0 = each sentence in a window of
its own, as in training). Columns: test entity F1 (seqeval, gold IOB1 converted to IOB2), sentences/s
of ``predict_documents`` (model loading excluded), the slow-down against no context, and the share of
sentences with the same entities as ``context_pack 0``. Writes the ``context-pack`` section of
docs/benchmarks.md. One pass per reading, on this process's threads (``--threads``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from common import DATASETS, command_line, machine, write_section


def read(model: str, documents: list[Any], **kwargs: Any) -> dict[str, Any]:
    from nerfocal.predict import Predictor

    predictor = Predictor.from_pretrained(model, device="cpu", **kwargs)
    start = time.perf_counter()
    predictions = list(predictor.predict_documents(documents))
    seconds = time.perf_counter() - start
    return {
        "tags": [p.tags for p in predictions],
        "sentences_per_s": len(predictions) / seconds,
        "context_size": predictor.context_size,
        "context_pack": predictor.context_pack,
    }


def main(args: Any) -> None:
    import torch
    from seqeval.metrics.sequence_labeling import get_entities

    from nerfocal.labels import convert_tags
    from nerfocal.metrics import entity_metrics

    torch.set_num_threads(args.threads)
    from nerfocal.documents import read_documents

    test = Path(DATASETS["conll2003"]["dir"]) / "test.txt"
    documents = list(read_documents(str(test), "conll", "utf-8", None))[: args.limit]
    readings = {"no context": read(args.model, documents, context_size=0)}
    for pack in args.packs:
        readings[f"context_pack {pack}"] = read(args.model, documents, context_pack=pack)
    gold = [convert_tags(d.gold or [], "IOB1", "IOB2") for d in documents]
    base = readings["no context"]["sentences_per_s"]
    alone = readings.get("context_pack 0")
    size = next(r["context_size"] for name, r in readings.items() if name != "no context")
    rows = []
    for name, r in readings.items():
        f1 = 100 * entity_metrics(gold, r["tags"])["f1"]
        same = "-"
        if alone is not None:
            agree = sum(
                set(get_entities(a)) == set(get_entities(b))
                for a, b in zip(alone["tags"], r["tags"], strict=True)
            )
            same = f"{100 * agree / len(gold):.1f}%"
        label = (
            name
            if name == "no context"
            else f"context {r['context_size']}, `context_pack` {r['context_pack']}"
        )
        rows.append(
            f"| {label} | {f1:.2f} | {r['sentences_per_s']:.1f} | {base / r['sentences_per_s']:.2f}x | {same} |"
        )
    body = "\n".join(
        [
            "## Document context: packed prediction (`--context-pack`)",
            "",
            f"Command: `{command_line()}`  ",
            f"Machine: {machine()}; {args.threads} thread(s)  ",
            f"Model: `{args.model}` (trained with `context_size` {size}). Data: CoNLL-2003 test"
            f" ({len(gold)} sentences) with its documents; Viterbi; one pass per reading"
            " (docs/context.md#packing).",
            "",
            "| reading | test F1 | sentences/s | slower than no context | same entities as `context_pack` 0 |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    print(body)
    write_section("context-pack", body)
