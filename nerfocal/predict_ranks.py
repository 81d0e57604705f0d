"""Predict under ``torchrun`` / ``accelerate launch``: one shard of the input per rank (docs/predict.md).

Every rank reads the input file and cuts it into chunks with the rule of
:meth:`nerfocal.predict.Predictor.predict_documents`; the chunks that start in the rank's share of the
documents (``[rank * N / W, (rank + 1) * N / W)``, ``N`` counted beforehand) are its contiguous shard.
A rank writes its output lines to ``RANK.part`` in a temporary folder beside the output, which the
main process (rank 0) creates and whose path it broadcasts; once every rank is done the main process
concatenates the parts in rank order into the output through :func:`nerfocal.io.atomic_open` and
removes the folder. Chunks are those of one process, so the output is the same file byte for byte.

Each rank reports its progress (documents done) and its end (``done`` or ``failed`` with a one-line
message) in a small status file in that folder: the main process shows the total on its progress
bar, a rank stops at its next chunk once another one has failed, and no collective operation waits
while ranks are still working (a finished rank polls the files instead of blocking in a barrier).
Collectives (gloo, on CPU or GPU alike) run only where every rank arrives at once: the broadcast of
the folder at the start, a barrier at the end. A rank that dies without a status file is seen by the
launcher, which stops the others (SIGTERM: :class:`nerfocal.io.Terminated`), so the output is still
absent and the folder removed; only a SIGKILL of the main process can leave the folder behind.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nerfocal.io import atomic_open
from nerfocal.predict_workers import document_chunks, serialise_predictions

if TYPE_CHECKING:
    from nerfocal.predict import Document, Predictor

__all__ = ["RankError", "World", "launched_world", "predict_on_ranks", "rank_device", "shard_chunks"]

logger = logging.getLogger(__name__)

_POLL_S = 0.2
_PASSED_ON = (ValueError, FileNotFoundError, OSError)  # the CLI's usual one-line errors


class RankError(RuntimeError):
    """A rank failed (the message names each one and its error); the output was not written."""


class _Stopped(Exception):
    """This rank stopped early because another one failed."""


@dataclass(frozen=True)
class World:
    """This process's place in a launch: ``rank`` of ``size`` processes, ``local_rank`` on its machine."""

    rank: int
    size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_world(environ: dict[str, str] | None = None) -> World | None:
    """The launch this process is part of (``WORLD_SIZE`` > 1, as torchrun and accelerate set it), else None.

    Raises:
        ValueError: ``WORLD_SIZE``, ``RANK`` or ``LOCAL_RANK`` that are not integers in range.
    """
    env = os.environ if environ is None else environ
    values: dict[str, int] = {}
    for name, default in (("WORLD_SIZE", "1"), ("RANK", "0"), ("LOCAL_RANK", "0")):
        text = env.get(name, default)
        try:
            values[name] = int(text)
        except ValueError:
            raise ValueError(f"environment variable {name}: expected an integer, got {text!r}") from None
    size, rank, local = values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"]
    if size <= 1:
        return None
    if not (0 <= rank < size and local >= 0):
        raise ValueError(
            f"environment: expected 0 <= RANK < WORLD_SIZE={size} and LOCAL_RANK >= 0, got {rank}"
        )
    return World(rank, size, local)


def rank_device(device: str, world: World, cuda_devices: int | None = None) -> str:
    """The device of a rank: ``auto`` / ``cuda`` become ``cuda:LOCAL_RANK`` (ranks beyond the visible GPUs
    share them round-robin), ``auto`` without a GPU ``cpu``; any other value is used as given.

    ``cuda_devices``: the GPUs visible to this process (default: asked of torch).
    """
    if cuda_devices is None:
        import torch

        cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device in ("auto", "cuda") and cuda_devices > 0:
        return f"cuda:{world.local_rank % cuda_devices}"
    return "cpu" if device == "auto" else device


def shard_bounds(total: int, world: World) -> tuple[int, float]:
    """``[start, stop)`` of this rank's documents; the last rank's ``stop`` is open (inf), so a count that
    is off (a file that grew) still loses no document."""
    start = world.rank * total // world.size
    stop = float("inf") if world.rank == world.size - 1 else (world.rank + 1) * total // world.size
    return start, stop


def shard_chunks(
    documents: Iterable[Document],
    total: int,
    world: World,
    chunk_size: int,
    chunk_words: int,
) -> Iterator[list[Document]]:
    """The chunks (:func:`nerfocal.predict_workers.document_chunks`) that start in this rank's share.

    Every rank cuts the same chunks, so the shards partition them, in order. Reading stops at the end of
    the shard: a later chunk is not read at all (a bad line there is the next rank's error). The last rank
    reads to the end of the input whatever ``total`` says, so a miscounted total never drops documents.
    """
    start, stop = shard_bounds(total, world)
    if start >= stop:
        return  # fewer documents than ranks: nothing to read
    position = 0
    last = world.rank == world.size - 1
    for chunk in document_chunks(documents, chunk_size, chunk_words):
        begin, position = position, position + len(chunk)
        if begin >= start:  # and begin < stop: the previous chunk ended before stop
            yield chunk
        if position >= stop and not last:
            return


def shard_context(
    documents: Iterable[Document],
    reader: Callable[[Iterable[Document]], Iterator[Document]],
    world: World,
    total: int,
) -> Iterator[Document]:
    """``documents`` for :func:`shard_chunks`: from the shard's start on, with their document context.

    The documents before the start pass as read (their chunks are earlier ranks'); the sentences of the
    document that holds the first one of the shard are kept back and read again, so the reader starts
    at that document's first sentence and gives what one process gives, at the cost of this shard only.
    The reader reads ahead (a block of documents and a right context): on a rank but the last, a bad
    line past the shard ends the stream quietly, since that line is the next rank's error.
    """
    start, stop = shard_bounds(total, world)
    iterator = _quiet_after(documents, stop)
    held: list[Document] = []  # the sentences so far of the document that holds document ``start``
    for _ in range(start):
        document = next(iterator, None)
        if document is None:
            return
        key = document.document_id
        if key is None or not held or held[-1].document_id != key:
            held = []
        if key is not None:
            held.append(document)
        yield document
    for position, document in enumerate(reader(itertools.chain(held, iterator))):
        if position >= len(held):
            yield document


def _quiet_after(documents: Iterable[Document], stop: float) -> Iterator[Document]:
    """``documents``, ending without an error at a bad line after the first ``stop`` of them."""
    iterator, position = iter(documents), 0
    while True:
        try:
            document = next(iterator)
        except StopIteration:
            return
        except _PASSED_ON:
            if position >= stop:
                return
            raise
        position += 1
        yield document


# --- status files: progress, end, failure ------------------------------------------------------------


def _status_path(parts: Path, rank: int) -> Path:
    return parts / f"{rank}.status"


def _write_status(parts: Path, rank: int, state: str, done: int, message: str = "") -> None:
    # atomic_open, not write_text: a folder the main process removed (it was stopped) is not made again
    with atomic_open(_status_path(parts, rank)) as handle:
        handle.write(f"{state} {done} {' '.join(message.split())}".rstrip() + "\n")


def _read_statuses(parts: Path, size: int) -> list[tuple[str, int, str]]:
    """``(state, documents done, message)`` per rank; ``("starting", 0, "")`` before its first report."""
    statuses = []
    for rank in range(size):
        try:
            state, done, *message = _status_path(parts, rank).read_text(encoding="utf-8").split(" ", 2)
            statuses.append((state, int(done), " ".join(message).strip()))
        except (FileNotFoundError, ValueError):
            statuses.append(("starting", 0, ""))
    return statuses


def _failures(statuses: list[tuple[str, int, str]]) -> list[str]:
    return [f"rank {r}: {msg}" for r, (state, _, msg) in enumerate(statuses) if state == "failed"]


# --- the launch ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _process_group(timeout_s: float) -> Iterator[Any]:
    import torch.distributed as dist

    if dist.is_initialized():  # e.g. a caller that set one up already
        yield dist
        return
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout_s))
    try:
        yield dist
    finally:
        dist.destroy_process_group()


def _make_parts_folder(output: Path, world: World, dist: Any) -> Path:
    """Rank 0 creates the folder beside the output and broadcasts its path (or its error) to all."""
    message: list[Any] = [None]
    if world.is_main:
        target = Path(os.path.realpath(output))
        try:
            message = [tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.parts.")]
        except OSError as err:
            message = [OSError(f"{output}: cannot create a folder in {target.parent} ({err.strerror})")]
    dist.broadcast_object_list(message, src=0)
    if isinstance(message[0], BaseException):
        raise message[0]
    return Path(message[0])


def _predict_shard(
    parts: Path,
    world: World,
    load_predictor: Callable[[], Predictor],
    documents: Iterable[Document],
    total: int,
    output_format: str,
    word_tags: bool,
    on_progress: Callable[[list[tuple[str, int, str]]], None],
) -> int:
    """Write this rank's part; returns its documents. Stops early (_Stopped) when another rank failed."""
    predictor = load_predictor()
    done = 0
    _write_status(parts, world.rank, "running", done)
    # a shard may begin or end inside a document and still read what one process reads
    reader = predictor.context_reader()
    stream = documents if reader is None else shard_context(documents, reader, world, total)
    chunks = shard_chunks(stream, total, world, predictor.chunk_size, predictor.chunk_words)
    with atomic_open(parts / f"{world.rank}.part") as handle:
        for chunk in chunks:
            text = serialise_predictions(predictor, chunk, output_format, word_tags, add_context=False)
            handle.write(text)
            done += len(chunk)
            _write_status(parts, world.rank, "running", done)
            statuses = _read_statuses(parts, world.size)
            on_progress(statuses)
            if _failures(statuses):
                raise _Stopped
    return done


def _wait_for_all(parts: Path, world: World, on_progress: Callable[..., None]) -> list[tuple[str, int, str]]:
    """Poll the status files until every rank has ended (interruptible, unlike a barrier)."""
    while True:
        statuses = _read_statuses(parts, world.size)
        on_progress(statuses)
        if all(state in ("done", "failed", "stopped") for state, _, _ in statuses):
            return statuses
        time.sleep(_POLL_S)


def _concatenate(parts: Path, world: World, output: Path, header: str, footer: str) -> None:
    with atomic_open(output) as handle:
        handle.write(header)
        for rank in range(world.size):
            with (parts / f"{rank}.part").open(encoding="utf-8", newline="") as part:
                shutil.copyfileobj(part, handle, 1 << 20)
        handle.write(footer)


def predict_on_ranks(
    documents: Iterable[Document],
    total: int,
    output: str | Path,
    load_predictor: Callable[[], Predictor],
    *,
    world: World,
    output_format: str = "jsonl",
    word_tags: bool = False,
    header: str = "",
    footer: str = "",
    progress: Any = None,
    timeout_s: float = 600.0,
) -> int:
    """Predict this rank's shard of ``documents``; the main process writes ``output``. Call on every rank.

    Args:
        documents: the whole input, read lazily (every rank reads up to the end of its shard).
        total: the number of documents (e.g. :func:`nerfocal.documents.count_documents`): the shards.
        output: a file path (not ``-``): complete when this returns on the main process, else absent.
        load_predictor: builds this rank's Predictor (on its device; :func:`rank_device`).
        world: :func:`launched_world`.
        output_format, word_tags: as :func:`nerfocal.documents.write_prediction`.
        header, footer: written around the parts (the HTML page's start and end).
        progress: a tqdm-like bar (``n``, ``update``) advanced to the documents done by all ranks; the
            main process's only.
        timeout_s: of the collectives (the start and the final barrier, where all ranks arrive at once).

    Returns:
        The documents this rank predicted.

    Raises:
        ValueError, FileNotFoundError, OSError: this rank's own failure (e.g. a bad line in its shard).
        RankError: a rank failed (any other exception, or another rank's failure), naming each failed
            rank and its one-line message. A rank that stopped early for another one's failure raises it too.
    """
    output = Path(output)

    def on_progress(statuses: list[tuple[str, int, str]]) -> None:
        if progress is not None:
            progress.update(sum(done for _, done, _ in statuses) - progress.n)

    with _process_group(timeout_s) as dist:
        parts = _make_parts_folder(output, world, dist)
        try:
            own: Exception | None = None
            done = 0
            try:
                done = _predict_shard(
                    parts, world, load_predictor, documents, total, output_format, word_tags, on_progress
                )
                _write_status(parts, world.rank, "done", done)
            except _Stopped as err:
                own = err
                _write_status(parts, world.rank, "stopped", 0)
            except Exception as err:
                own = err
                message = str(err) if isinstance(err, _PASSED_ON) else f"{type(err).__name__}: {err}"
                _write_status(parts, world.rank, "failed", 0, message)
            except BaseException as err:  # Ctrl-C, SIGTERM: the other ranks stop at their next chunk
                with contextlib.suppress(OSError):  # the folder may be gone: the main process stopped too
                    _write_status(parts, world.rank, "failed", 0, f"interrupted ({type(err).__name__})")
                raise
            statuses = _wait_for_all(parts, world, on_progress)
            dist.barrier()
            if isinstance(own, _PASSED_ON):
                raise own  # this rank's own error, as one process reports it
            failures = _failures(statuses)
            if failures:
                raise RankError(f"{'; '.join(failures)}; {output} not written")
            if world.is_main:
                _concatenate(parts, world, output, header, footer)
            return done
        finally:
            if world.is_main:
                shutil.rmtree(parts, ignore_errors=True)
