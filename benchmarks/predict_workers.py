"""Prediction speed with 1, 2, ... worker processes (`nerfocal predict --num-workers N`), same output?

    python benchmarks/benchmark.py workers --model outputs/minilm_conll2003 [--workers 1 2]
    python benchmarks/predict_workers.py --model outputs/minilm_conll2003 --data news.txt [--workers 1 2 4]

Tags the same lines once per worker count, as ``nerfocal predict`` does (one worker: one Predictor in
this process; N: :func:`nerfocal.predict_workers.predict_in_processes`), timing each run end to end
(model loading and process start-up included, as a user sees it), and checks that every JSONL output
is byte-identical to the first one. ``benchmark.py workers`` runs it on the CoNLL-2003 test sentences
and writes the ``predict-workers`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nerfocal.predict import Document, Predictor
from nerfocal.predict_workers import predict_in_processes, serialise_predictions, worker_threads


def measure(
    model_dir: str | Path,
    lines: Sequence[str],
    workers: Sequence[int] = (1, 2),
    *,
    chunk_size: int = 256,
    device: str = "cpu",
) -> dict[str, Any]:
    """Sentences/s of ``nerfocal predict`` for each worker count, and whether the outputs are identical.

    Args:
        model_dir: a directory written by training.
        lines: one document per line (text input), e.g. the sentences of a test set joined by spaces.
        workers: the ``--num-workers`` values to compare; the first is the reference output.
        chunk_size: documents per task (``--chunk-size``); small enough that every worker gets work.
        device: ``--device``.

    Returns:
        ``{"sentences": N, "runs": {workers: {"seconds", "sentences_per_s"}}, "identical": bool}``.
    """
    import torch

    load = functools.partial(Predictor.from_pretrained, str(model_dir), device=device, chunk_size=chunk_size)
    results: dict[str, Any] = {"sentences": len(lines), "runs": {}}
    outputs: list[str] = []
    for count in workers:
        documents = (Document.from_text(line) for line in lines)
        start = time.perf_counter()
        if count == 1:
            text = serialise_predictions(load(), documents, "jsonl", False)
        else:
            chunks = predict_in_processes(documents, load, num_workers=count, chunk_size=chunk_size)
            text = "".join(part for _, part in chunks)
        seconds = time.perf_counter() - start
        outputs.append(text)
        threads = torch.get_num_threads() if count == 1 else worker_threads(count)
        results["runs"][count] = {
            "seconds": seconds,
            "sentences_per_s": len(lines) / seconds,
            "threads": threads,
        }
    results["identical"] = all(o == outputs[0] for o in outputs)
    return results


def main(args: Any) -> None:
    """``benchmark.py workers``: the CoNLL-2003 test sentences, one per line, for each worker count."""
    from common import DATASETS, command_line, machine, write_section

    from nerfocal.conll import read_conll

    test_file = DATASETS["conll2003"]["dir"] / "test.txt"
    lines = [" ".join(s.tokens) for s in read_conll(test_file)][: args.limit]
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    results = measure(args.model, lines, args.workers, chunk_size=args.chunk_size)
    results.update(
        model=str(args.model), chunk_size=args.chunk_size, command=command_line(), machine=machine()
    )
    write_section("predict-workers", render(results))


def render(r: dict[str, Any]) -> str:
    runs = r["runs"]
    first = next(iter(runs.values()))
    rows = [
        "| processes | torch threads each | seconds (end to end) | sentences/s | vs 1st row |",
        "|---|---|---|---|---|",
    ]
    for count, run in runs.items():
        speed = first["seconds"] / run["seconds"]
        rows.append(
            f"| {count} | {run['threads']} | {run['seconds']:.1f} | {run['sentences_per_s']:.0f} | {speed:.2f}x |"
        )
    same = "**byte-identical**" if r["identical"] else "**NOT identical**"
    return "\n".join(
        [
            "## Prediction in worker processes: `nerfocal predict --num-workers N`",
            "",
            f"Command: `{r['command']}`  ",
            f"Machine: {r['machine']}  ",
            f"Model: `{r['model']}`. Data: CoNLL-2003 test, {r['sentences']} sentences as text lines; "
            f"chunks of {r['chunk_size']} documents; JSONL output. Each time covers the whole run as a user "
            "sees it: model loading, worker start-up (spawned interpreters), prediction, output.",
            "",
            *rows,
            "",
            f"- The JSONL output of every worker count against the first: {same}.",
        ]
    )


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="model directory written by training")
    parser.add_argument("--data", required=True, help="text file, one document per line")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    parser.add_argument("--limit", type=int, default=5000, help="first N lines only (default 5000)")
    args = parser.parse_args(argv)
    lines = Path(args.data).read_text(encoding="utf-8").splitlines()[: args.limit]
    print(json.dumps(measure(args.model, lines, args.workers), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
