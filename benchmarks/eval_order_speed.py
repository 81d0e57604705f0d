"""Evaluation in length-sorted batches (nerfocal.eval_order) against transformers' sequential order.

    python benchmarks/benchmark.py eval-order [--limit 1200] [--batch-size 64] [--rounds 2]

MiniLM-L6 with an untrained 9-label head (speed only: the same model, the same rows), CoNLL-2003 dev
encoded by nerfocal's encoder; ``Trainer.evaluate`` of plain transformers against
:class:`nerfocal.eval_order.LengthSortedEvaluation` (the base of nerfocal's trainer), interleaved
rounds, best of ``--rounds``; the two must return the same logits row by row. Writes the
``eval-order`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from common import DATASETS, MINILM, command_line, machine, write_section

LABELS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def main(args: Any) -> None:
    import numpy as np
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    from nerfocal.conll import read_conll
    from nerfocal.encode import encode_sentences
    from nerfocal.eval_order import LengthSortedEvaluation
    from nerfocal.labels import convert_tags
    from nerfocal.loading import resolve_model_path

    torch.set_num_threads(args.threads)
    path = resolve_model_path(MINILM)
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=len(LABELS))
    tokenizer = AutoTokenizer.from_pretrained(path)
    sentences = list(read_conll(Path(DATASETS["conll2003"]["dir"]) / "dev.txt"))[: args.limit]
    for s in sentences:
        s.tags = convert_tags(s.tags or [], "IOB1", "IOB2")
    label2id = {label: i for i, label in enumerate(LABELS)}
    features, _, _ = encode_sentences(sentences, tokenizer, label2id, max_length=256)
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out, per_device_eval_batch_size=args.batch_size, use_cpu=True, report_to="none"
        )
        common = {
            "model": model,
            "args": targs,
            "data_collator": DataCollatorForTokenClassification(tokenizer),
        }
        runners = {
            "transformers (dataset order)": Trainer(**common),
            "length-sorted": LengthSortedEvaluation(**common),
        }
        best: dict[str, float] = {}
        logits: dict[str, Any] = {}
        for _ in range(args.rounds):
            for name, trainer in runners.items():
                start = time.perf_counter()
                logits[name] = trainer.predict(features).predictions
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    plain, ours = (logits[name] for name in runners)
    same = all(
        np.allclose(plain[i][: len(f["input_ids"])], ours[i][: len(f["input_ids"])], atol=1e-4)
        for i, f in enumerate(features)
    )
    base = best["transformers (dataset order)"]
    rows = [
        f"| {name} | {seconds:.1f} | {len(features) / seconds:.1f} | {base / seconds:.2f}x |"
        for name, seconds in best.items()
    ]
    body = "\n".join(
        [
            "## Evaluation in length-sorted batches",
            "",
            f"Command: `{command_line()}`  ",
            f"Machine: {machine()}; {args.threads} thread(s)  ",
            f"MiniLM-L6, untrained 9-label head (speed only); the first {len(features)} CoNLL-2003 dev"
            f" sentences; `Trainer.predict`, batch {args.batch_size}; best of {args.rounds} interleaved rounds."
            f" Same logits row by row (atol 1e-4): **{'yes' if same else 'NO'}**.",
            "",
            "| evaluation order | seconds | sentences/s | speed-up |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    print(body)
    write_section("eval-order", body)
