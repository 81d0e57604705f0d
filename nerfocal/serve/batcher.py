"""Micro-batching: documents of concurrent requests share one ``predict_chunk`` call.

One asyncio task owns a queue of ``(document, future)`` items. It takes the first waiting item,
then keeps collecting until the batch holds ``max_batch_tokens`` estimated tokens or ``max_wait_ms``
have passed since that first item, runs the batch in a single worker thread (so the event loop never
blocks and the model is never called from two threads at once) and sets each request's futures.
The worker thread predicts with a :func:`thread_replica` of the predictor (the same model, its own
tokenizer), so that the event loop may tokenize with the original meanwhile (``"document": true``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from nerfocal.words import Document, Prediction

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = 2  # [CLS] / [SEP] or <s> / </s>: what each document adds to its window


def estimate_tokens(document: Document) -> int:
    """A cheap token count for batching: one per word plus the special tokens (no tokenizer call)."""
    return len(document.words) + SPECIAL_TOKENS


def thread_replica(predictor: Any) -> Any:
    """``predictor`` for another thread: the same model, a copy of its tokenizer.

    PyTorch and ONNX Runtime inference may run from several threads at once; a Hugging Face fast
    tokenizer may not: it is reconfigured on each call ("Already borrowed", huggingface/tokenizers#537).
    Anything but a :class:`nerfocal.predict.Predictor` (a test double, a wrapper) is used as it is.
    """
    from nerfocal.predict import Predictor

    if not isinstance(predictor, Predictor):
        return predictor
    twin = copy.copy(predictor)
    twin.tokenizer = copy.deepcopy(predictor.tokenizer)
    return twin


@dataclass
class BatchStats:
    """Counters for ``/info`` and the tests: batches run, documents predicted, largest batch, and the
    seconds the model spent on batches (over the time served: how busy the model was)."""

    batches: int = 0
    documents: int = 0
    largest: int = 0
    model_seconds: float = 0.0


class MicroBatcher:
    """Queue documents from many requests and predict them together.

    Args:
        predictor: anything with ``predict_chunk(documents) -> list[Prediction]`` (a
            :class:`nerfocal.predict.Predictor`).
        max_batch_tokens: a batch closes once its estimated tokens (:func:`estimate_tokens`) reach this.
        max_wait_ms: a batch closes at the latest this long after its first document arrived.
    """

    def __init__(self, predictor: Any, *, max_batch_tokens: int = 4096, max_wait_ms: float = 5.0) -> None:
        if max_batch_tokens < 1:
            raise ValueError(f"expected max_batch_tokens >= 1, got {max_batch_tokens}")
        if not max_wait_ms >= 0:
            raise ValueError(f"expected max_wait_ms >= 0, got {max_wait_ms}")
        self.predictor = predictor
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._queue: asyncio.Queue[tuple[Document, asyncio.Future[Prediction]] | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[Document, asyncio.Future[Prediction]] | None = None  # over-budget carry
        self._replica: Any = None  # the worker thread's predictor

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the worker task on the running event loop."""
        self._queue = asyncio.Queue()
        self._replica = thread_replica(self.predictor)  # the original stays with the event loop
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nerfocal-model")
        self._task = asyncio.create_task(self._work(), name="nerfocal-batcher")

    async def stop(self) -> None:
        """Predict everything still queued, then stop the worker and its thread."""
        if self._queue is not None and self.running:
            await self._queue.put(None)  # sentinel: behind every document already queued
            assert self._task is not None
            await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        logger.info("batcher stopped after %d batches", self.stats.batches)

    async def predict(self, documents: Sequence[Document]) -> list[Prediction]:
        """Predictions for ``documents`` in order, computed in shared batches."""
        if self._queue is None or not self.running:
            raise RuntimeError("expected a started batcher, got one that is not running")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in documents]
        for document, future in zip(documents, futures, strict=True):
            self._queue.put_nowait((document, future))
        return list(await asyncio.gather(*futures))

    async def _next_batch(self) -> tuple[list[tuple[Document, asyncio.Future[Prediction]]], bool]:
        """One batch of queued items, and whether the stop sentinel was seen."""
        assert self._queue is not None
        first = self._pending or await self._queue.get()
        self._pending = None
        if first is None:
            return [], True
        batch, tokens = [first], estimate_tokens(first[0])
        deadline = time.monotonic() + self.max_wait
        while tokens < self.max_batch_tokens:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get_nowait()
                    if remaining <= 0
                    else await asyncio.wait_for(self._queue.get(), remaining)
                )
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if item is None:
                return batch, True
            size = estimate_tokens(item[0])
            if tokens + size > self.max_batch_tokens:
                self._pending = item  # starts the next batch
                break
            batch.append(item)
            tokens += size
        return batch, False

    def _predict_chunk(self, documents: list[Document]) -> tuple[list[Prediction], float]:
        start = time.perf_counter()
        predictions = self._replica.predict_chunk(documents)
        return predictions, time.perf_counter() - start

    async def _work(self) -> None:
        stopping = False
        while True:
            batch, saw_stop = await self._next_batch()
            stopping = stopping or saw_stop
            live = [(doc, fut) for doc, fut in batch if not fut.cancelled()]  # cancelled: client went away
            if live:
                await self._run(live)
            if stopping and self._pending is None and self._queue is not None and self._queue.empty():
                return

    async def _run(self, batch: list[tuple[Document, asyncio.Future[Prediction]]]) -> None:
        loop = asyncio.get_running_loop()
        documents = [doc for doc, _ in batch]
        try:
            predictions, seconds = await loop.run_in_executor(self._executor, self._predict_chunk, documents)
        except Exception:
            if len(batch) == 1:
                logger.exception("prediction failed for a document of %d words", len(documents[0].words))
                _set(batch[0][1], exception=RuntimeError("prediction failed; see the server log"))
                return
            # one bad document must not fail the other requests of its batch: retry one by one
            for item in batch:
                await self._run([item])
            return
        self.stats.batches += 1
        self.stats.documents += len(batch)
        self.stats.largest = max(self.stats.largest, len(batch))
        self.stats.model_seconds += seconds
        for (_, future), prediction in zip(batch, predictions, strict=True):
            _set(future, result=prediction)


def _set(
    future: asyncio.Future[Prediction],
    *,
    result: Prediction | None = None,
    exception: Exception | None = None,
) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):  # cancelled meanwhile
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)  # type: ignore[arg-type]
