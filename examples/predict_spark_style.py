"""Run a nerfocal Predictor the way Spark (`mapInPandas`) or Ray Data (`map_batches`) would, on one machine.

    python examples/predict_spark_style.py --model runs/conll03/best --input corpus.txt --output out.jsonl
    python examples/predict_spark_style.py --model runs/conll03/best --input corpus.txt --output out.jsonl \\
        --processes 2 --batch-rows 256

Needs pandas only (no Spark, no Ray). The two pieces an engine calls are

* :class:`Tagger`: Ray Data's callable class. ``__init__`` loads the model once per actor and
  ``__call__`` tags one pandas batch: ``ds.map_batches(Tagger, fn_constructor_kwargs={"model_dir": DIR},
  batch_format="pandas", concurrency=4)`` (add ``num_gpus=1`` for a GPU per actor);
* :func:`tag_partition`: Spark's ``mapInPandas`` function: an iterator of pandas frames (one partition)
  in, an iterator of tagged frames out, one model load per task:
  ``df.mapInPandas(functools.partial(tag_partition, model_dir=DIR), schema=SCHEMA)``.

Here a plain loop (``--processes 1``) or a :class:`concurrent.futures.ProcessPoolExecutor` whose
processes each hold one :class:`Tagger` (``--processes N``, like Ray's actor pool) stands in for the
engine. Rows carry an ``id``; the output (one JSON object per line: ``id``, ``text``, ``entities``) is
sorted by it, since an engine returns batches in any order.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from nerfocal.io import atomic_open
from nerfocal.predict import Document, Predictor
from nerfocal.records import entity_records

SCHEMA = "id long, text string, entities string"  # the Spark schema of the frames tag_partition yields


class Tagger:
    """Tags the ``text`` column of a pandas batch; adds ``entities`` (a JSON list, as Spark can store)."""

    def __init__(self, model_dir: str, device: str = "cpu", **predictor_kwargs: Any) -> None:
        self.predictor = Predictor.from_pretrained(model_dir, device=device, **predictor_kwargs)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        documents = (Document.from_text(text) for text in batch["text"])
        predictions = self.predictor.predict_documents(documents)
        entities = [json.dumps(entity_records(p), ensure_ascii=False) for p in predictions]
        return batch.assign(entities=entities)


def tag_partition(
    frames: Iterable[pd.DataFrame], model_dir: str, device: str = "cpu"
) -> Iterator[pd.DataFrame]:
    """Spark ``mapInPandas``: the model is loaded once per partition, not per row or batch."""
    tagger = Tagger(model_dir, device)
    for frame in frames:
        yield tagger(frame)


def batches(texts: list[str], rows: int) -> Iterator[pd.DataFrame]:
    """Frames of at most ``rows`` rows with an ``id`` column: what the engine hands to the function."""
    for start in range(0, len(texts), rows):
        chunk = texts[start : start + rows]
        yield pd.DataFrame({"id": range(start, start + len(chunk)), "text": chunk})


_TAGGER: Tagger | None = None


def _start_actor(model_dir: str, threads: int) -> None:
    import torch

    global _TAGGER
    torch.set_num_threads(threads)
    _TAGGER = Tagger(model_dir)


def _tag_on_actor(batch: pd.DataFrame) -> pd.DataFrame:
    assert _TAGGER is not None, "the process initializer did not run"
    return _TAGGER(batch)


def tag_texts(texts: list[str], model_dir: str, *, processes: int = 1, batch_rows: int = 256) -> pd.DataFrame:
    """Tag ``texts`` with a loop over :func:`tag_partition` (1 process) or a pool of Tagger processes."""
    frames = batches(texts, batch_rows)
    if processes == 1:
        tagged = list(tag_partition(frames, model_dir))
    else:
        pool = concurrent.futures.ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),  # fork would copy torch's threads
            initializer=_start_actor,
            initargs=(model_dir, 1),
        )
        with pool:
            tagged = list(pool.map(_tag_on_actor, frames))
    if not tagged:
        return pd.DataFrame({"id": [], "text": [], "entities": []})
    return pd.concat(tagged).sort_values("id", kind="stable").reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a directory written by nerfocal train")
    parser.add_argument("--input", required=True, help="text file, one document per line")
    parser.add_argument("--output", required=True, help="JSONL: id, text, entities per line")
    parser.add_argument("--processes", type=int, default=1, help="1: a plain loop; N: N Tagger processes")
    parser.add_argument("--batch-rows", type=int, default=256, help="rows per pandas batch (default 256)")
    args = parser.parse_args(argv)
    if args.processes < 1 or args.batch_rows < 1:
        parser.error("expected positive --processes and --batch-rows")
    with Path(args.input).open(encoding="utf-8") as handle:  # lines as nerfocal predict reads them
        texts = [line.rstrip("\n") for line in handle]
    table = tag_texts(texts, args.model, processes=args.processes, batch_rows=args.batch_rows)
    with atomic_open(args.output) as handle:
        for row in table.itertuples(index=False):
            record = {"id": int(row.id), "text": row.text, "entities": json.loads(row.entities)}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"{len(table)} documents tagged -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
