"""Predict over several processes on one machine, output in input order (see docs/predict.md).

The parent reads the documents in order and cuts them into chunks with the same rule as
:meth:`nerfocal.predict.Predictor.predict_documents` (``chunk_size`` documents or ``chunk_words``
words), so every chunk is sorted and batched exactly as one process would; a pool of spawned
processes (:class:`concurrent.futures.ProcessPoolExecutor`) each loads the Predictor once and turns
a chunk into its finished output text. The parent only writes those strings, in order, with at most
``2 * num_workers`` chunks in flight, so memory stays flat on any input size.

A failure in a worker (a bad model directory, an exception, a process that dies) is raised in the
parent with a one-line message; the caller's :func:`nerfocal.io.atomic_open` then removes its
temporary file, so the output is complete or absent.
"""

from __future__ import annotations

import collections
import concurrent.futures
import io
import logging
import multiprocessing
import os
import pickle
from collections.abc import Callable, Generator, Iterable
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from nerfocal.words import document_chunks

if TYPE_CHECKING:
    from nerfocal.context_reader import ContextReader
    from nerfocal.predict import Document, Predictor

__all__ = [
    "WorkerError",
    "document_chunks",
    "predict_in_processes",
    "serialise_predictions",
    "worker_threads",
]

logger = logging.getLogger(__name__)

_ERRORS_PASSED_ON = (ValueError, FileNotFoundError, OSError)  # the CLI's one-line error types


class WorkerError(RuntimeError):
    """A worker process failed on a chunk (an unexpected exception, or the process died)."""


def serialise_predictions(
    predictor: Predictor,
    documents: Iterable[Document],
    output_format: str,
    word_tags: bool,
    *,
    add_context: bool = True,
) -> str:
    """The output lines of ``documents`` (no HTML page header/footer), as ``nerfocal predict`` writes them.
    ``add_context=False``: the documents carry their context already."""
    from nerfocal.documents import write_prediction

    buffer = io.StringIO()  # newline="\n": written exactly as a text-mode output file gets them
    options = {} if add_context else {"add_context": False}
    for prediction in predictor.predict_documents(documents, **options):
        write_prediction(buffer, prediction, output_format, word_tags)
    return buffer.getvalue()


def worker_threads(num_workers: int) -> int:
    """Torch threads per worker: ``OMP_NUM_THREADS`` when set, else the usable cores divided among workers."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // num_workers)


# --- the worker side: one Predictor per process ------------------------------------------------------

_PREDICTOR: Any = None
_INIT_ERROR: BaseException | None = None


def _init_worker(load_predictor: Callable[[], Predictor], threads: int) -> None:
    # an exception here would only break the pool; keep it and raise it with the first task instead
    global _PREDICTOR, _INIT_ERROR
    try:
        import torch
        from transformers.utils import logging as hf_logging

        torch.set_num_threads(threads)
        hf_logging.disable_progress_bar()
        _PREDICTOR = load_predictor()
    except Exception as err:
        _INIT_ERROR = err


def _ready() -> bytes | None:
    """The pickled :class:`ContextReader` of the loaded predictor (None: no document context), for the
    parent (:func:`_load_reader`); the loading error, if any."""
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    reader = _PREDICTOR.context_reader() if hasattr(_PREDICTOR, "context_reader") else None
    return None if reader is None else pickle.dumps(reader)


def _load_reader(blob: bytes | None) -> ContextReader | None:
    """The worker's reader, unpickled here rather than by the pool, so that a tokenizer this process
    cannot import (a ``--trust-remote-code`` class) is a one-line error, not a "broken pool"."""
    if blob is None:
        return None
    from transformers.dynamic_module_utils import init_hf_modules

    init_hf_modules()  # where transformers puts the classes of remote code
    try:
        reader: ContextReader = pickle.loads(blob)  # noqa: TID251 (our own worker's object, not a file)
    except Exception as err:
        raise ValueError(
            f"--num-workers: the model's tokenizer cannot be loaded in the main process to read document "
            f"context ({type(err).__name__}: {' '.join(str(err).split())}); use --num-workers 1"
        ) from None
    return reader


def _predict_chunk(documents: list[Document], output_format: str, word_tags: bool) -> str:
    _ready()
    return serialise_predictions(_PREDICTOR, documents, output_format, word_tags, add_context=False)


# --- the parent side ---------------------------------------------------------------------------------


def _result(future: concurrent.futures.Future[Any], where: str) -> Any:
    try:
        return future.result()
    except _ERRORS_PASSED_ON:
        raise
    except BrokenProcessPool:
        raise WorkerError(f"{where} not written: a worker process died (killed, or out of memory?)") from None
    except Exception as err:
        message = " ".join(str(err).split())
        raise WorkerError(f"{where}: a worker failed: {type(err).__name__}: {message}") from None


def predict_in_processes(
    documents: Iterable[Document],
    load_predictor: Callable[[], Predictor],
    *,
    num_workers: int,
    output_format: str = "jsonl",
    word_tags: bool = False,
    chunk_size: int = 2048,
    chunk_words: int = 200_000,
    threads: int | None = None,
) -> Generator[tuple[int, str], None, None]:
    """Predict ``documents`` in ``num_workers`` spawned processes; yields ``(documents, text)`` per chunk,
    in input order, ``text`` being that chunk's output in ``output_format``.

    Args:
        documents: read lazily, in order, by this (the parent) process.
        load_predictor: a picklable callable each worker calls once, e.g.
            ``functools.partial(Predictor.from_pretrained, "runs/x/best", device="cpu")``.
        num_workers: processes (>= 1).
        output_format, word_tags: as :func:`nerfocal.documents.write_prediction`.
        chunk_size, chunk_words: a task's size; the same values as the Predictor's keep the output
            identical to one process.
        threads: torch threads per worker; default :func:`worker_threads`.

    Raises:
        ValueError, FileNotFoundError, OSError: raised by a worker (e.g. a bad model directory).
        WorkerError: any other failure in a worker, in one line naming the documents of the chunk.
    """
    if num_workers < 1:
        raise ValueError(f"--num-workers: expected a positive number of processes, got {num_workers}")
    threads = threads or worker_threads(num_workers)
    pool = concurrent.futures.ProcessPoolExecutor(
        num_workers,
        mp_context=multiprocessing.get_context("spawn"),  # fork would copy torch's threads and locks
        initializer=_init_worker,
        initargs=(load_predictor, threads),
    )
    logger.info("predicting in %d processes, %d torch thread(s) each", num_workers, threads)
    try:
        reader = _load_reader(_result(pool.submit(_ready), "loading the model"))  # before the input
        if reader is not None:  # context read here, over the whole stream: chunks may cut documents
            documents = reader(documents)
        pending: collections.deque[tuple[concurrent.futures.Future[str], int, int]] = collections.deque()
        first = 1
        for chunk in document_chunks(documents, chunk_size, chunk_words):
            pending.append((pool.submit(_predict_chunk, chunk, output_format, word_tags), first, len(chunk)))
            first += len(chunk)
            while len(pending) > 2 * num_workers or (pending and pending[0][0].done()):
                future, start, count = pending.popleft()
                yield count, _result(future, f"documents {start}-{start + count - 1}")
        while pending:
            future, start, count = pending.popleft()
            yield count, _result(future, f"documents {start}-{start + count - 1}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
