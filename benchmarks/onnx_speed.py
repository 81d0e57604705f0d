"""Inference speed of one model four ways: torch float32, torch bfloat16, ONNX float32, ONNX int8.

    python benchmarks/onnx_speed.py --model outputs/minilm_conll2003 --data test.txt [--batch-size 32]

Exports the model twice (float32 and int8) into a temporary directory with ``nerfocal.export``,
then tags the same sentences with each :class:`nerfocal.predict.Predictor` (one warm-up pass, then
the best of ``repeats`` timed passes) and reports sentences/s and, against torch float32, the share
of words whose predicted tag is the same. Threads: whatever torch uses (``OMP_NUM_THREADS``); the
ONNX sessions use the same count. To be wired into ``benchmarks/benchmark.py``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from nerfocal.export import export_model
from nerfocal.predict import Document, Predictor

VARIANTS = ("torch_fp32", "torch_bf16", "onnx_fp32", "onnx_int8")


def _time(predictor: Predictor, documents: list[Document], repeats: int) -> tuple[float, list[list[str]]]:
    tags = [p.tags for p in predictor.predict_documents(documents)]  # warm-up; also the tags
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in predictor.predict_documents(documents):
            pass
        best = min(best, time.perf_counter() - start)
    return best, tags


def measure(
    model_dir: str | Path, sentences: list[list[str]], batch_size: int, *, repeats: int = 3
) -> dict[str, Any]:
    """Sentences/s and tag agreement with torch float32 of each variant on the same sentences.

    Args:
        model_dir: a directory written by training (safetensors).
        sentences: pre-split words, one list per sentence.
        batch_size: at most this many windows per forward pass (``max_batch_size``).
        repeats: timed passes per variant (the best is kept).

    Returns:
        ``{"sentences": N, "batch_size": B, "<variant>": {"sentences_per_s", "seconds",
        "tag_agreement"}, "export": {"onnx_fp32": ExportReport, "onnx_int8": ExportReport}}``.
    """
    documents = [Document(list(words)) for words in sentences]
    options = {"device": "cpu", "max_batch_size": batch_size, "batch_tokens": 1 << 30}
    results: dict[str, Any] = {"sentences": len(documents), "batch_size": batch_size, "export": {}}
    with tempfile.TemporaryDirectory(prefix="onnx_speed.") as tmp:
        paths = {"torch_fp32": Path(model_dir), "torch_bf16": Path(model_dir)}
        for variant, quantize in (("onnx_fp32", None), ("onnx_int8", "int8")):
            paths[variant] = Path(tmp) / variant
            # the int8 self-check (argmax agreement on a few generic texts) is reported, not enforced, here
            results["export"][variant] = export_model(
                model_dir, paths[variant], quantize=quantize, check=quantize is None
            )
        reference: list[list[str]] = []
        for variant in VARIANTS:
            dtype = "bfloat16" if variant == "torch_bf16" else "float32"
            backend = "onnx" if variant.startswith("onnx") else "torch"
            predictor = Predictor.from_pretrained(paths[variant], backend=backend, dtype=dtype, **options)
            seconds, tags = _time(predictor, documents, repeats)
            reference = reference or tags
            pairs = [(a, b) for x, y in zip(reference, tags, strict=True) for a, b in zip(x, y, strict=True)]
            results[variant] = {
                "sentences_per_s": len(documents) / seconds,
                "seconds": seconds,
                "tag_agreement": sum(a == b for a, b in pairs) / max(len(pairs), 1),
            }
    return results


def _read_sentences(path: Path, limit: int) -> list[list[str]]:
    """Sentences of a CoNLL file (first column) or of a text file (one whitespace-split line each)."""
    sentences: list[list[str]] = []
    current: list[str] = []
    conll = False
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if current:
                sentences.append(current)
            current = []
            continue
        conll = conll or (len(fields) > 1 and len(fields) < 6 and fields[-1][:2] in ("O", "B-", "I-"))
        if conll:
            current.append(fields[0])
        else:
            sentences.append(fields)
        if len(sentences) >= limit:
            break
    if current and len(sentences) < limit:
        sentences.append(current)
    return sentences[:limit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model directory written by training")
    parser.add_argument("--data", required=True, type=Path, help="CoNLL or text file (one sentence a line)")
    parser.add_argument("--limit", type=int, default=1000, help="at most this many sentences (default 1000)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (default 32)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per variant (default 3)")
    args = parser.parse_args(argv)
    results = measure(
        args.model, _read_sentences(args.data, args.limit), args.batch_size, repeats=args.repeats
    )
    print(f"{results['sentences']} sentences, batch size {results['batch_size']}")
    for variant in VARIANTS:
        row = results[variant]
        print(
            f"{variant:11s} {row['sentences_per_s']:9.1f} sentences/s  tag agreement {row['tag_agreement']:.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
