"""Prediction speed with 1, 2, ... worker processes (`nerfocal predict --num-workers N`), same output?

    python benchmarks/predict_workers.py --model outputs/minilm_conll2003 --data news.txt [--workers 1 2 4]

Tags the same lines once per worker count, as ``nerfocal predict`` does (one worker: one Predictor in
this process; N: :func:`nerfocal.predict_workers.predict_in_processes`), timing each run end to end
(model loading and process start-up included, as a user sees it), and checks that every JSONL output
is byte-identical to the first one. To be wired into ``benchmarks/benchmark.py``.
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
from nerfocal.predict_workers import predict_in_processes, serialise_predictions


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
        results["runs"][count] = {"seconds": seconds, "sentences_per_s": len(lines) / seconds}
    results["identical"] = all(o == outputs[0] for o in outputs)
    return results


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
