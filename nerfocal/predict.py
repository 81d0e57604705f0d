"""Run a saved nerfocal model on text or pre-tokenized input: load, batch, window, decode, return spans.

Imports torch, transformers, the standard library and :mod:`nerfocal.labels` / :mod:`nerfocal.decode`
only; never the training code. See ``docs/predict.md`` for the user-facing rules.

Pipeline for a chunk of documents (a bounded buffer, so memory stays flat on any input size):

1. words -> sub-words in one batched fast-tokenizer call; documents longer than the model's
   maximum length come back as overlapping windows (``stride`` shared tokens);
2. each word is read from exactly one window: the one where its first sub-word has the most
   context on both sides (vectorised with ``scatter_reduce``);
3. windows are sorted by length and run in batches of at most ``batch_tokens`` padded tokens, a batch
   closing before a window under half its width (padding never more than doubles a row's cost: what
   keeps the server's small mixed-length micro-batches near the speed of long sorted chunks);
4. the first sub-word's log-probabilities (logits divided by the model's temperature) are decoded
   per document, by constrained Viterbi (default) or argmax, vectorised over documents (a document
   longer than ``VITERBI_SEGMENT`` words: over overlapping segments of it).

With document context (``context_size``, by default the training run's; :mod:`nerfocal.context`),
:meth:`Predictor.predict_documents` first gives each input the words of its neighbours with the same
``document_id`` (streamed); they are put around the input's words in its window and never read.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from nerfocal.context import merge_shared_windows, saved_context
from nerfocal.context_reader import ContextReader
from nerfocal.decision import parse_o_bias
from nerfocal.decode import (
    DECODERS,
    VITERBI_SEGMENT,
    decode,
    label_scheme,
    outside_id,
    transition_constraints,
    viterbi_segments,
)
from nerfocal.forward import forward_groups, packed_logits, padded_logits, supports_packing
from nerfocal.labels import check_scheme
from nerfocal.loading import labels_from_config, load_pretrained, model_max_length, resolve_device
from nerfocal.onnx_backend import choose_backend, load_onnx
from nerfocal.windows import default_stride, select_readers, tokenize_windows
from nerfocal.words import (
    Document,
    Entity,
    Prediction,
    compile_pattern,
    default_split_pattern,
    document_chunks,
    split_words,
)

__all__ = [
    "Document",
    "Entity",
    "Prediction",
    "Predictor",
    "default_split_pattern",
    "load_pretrained",
    "resolve_device",
    "split_words",
]

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Predictor:
    """Tag documents with a token-classification model; see the module docstring for the pipeline.

    Args:
        model: a ``*ForTokenClassification`` model whose ``config.id2label`` holds IOB2/BIOES tags.
        tokenizer: its fast tokenizer.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None``/``"auto"`` picks a GPU if visible.
        decode: ``"viterbi"`` (valid tag sequences only) or ``"argmax"`` (the training evaluation's rule).
        temperature: divide logits by ``config.nerfocal_temperature`` (default 1.0) before softmax.
        max_length: tokens per window including special tokens; default the training run's
            ``max_length`` (``config.nerfocal_max_length``), else the model's limit.
        stride: tokens shared by consecutive windows of a long document; default a quarter window.
        batch_tokens: at most this many padded tokens per forward pass.
        max_batch_size: at most this many windows per forward pass.
        chunk_size: documents buffered, sorted by length and predicted together.
        chunk_words: a chunk also ends when it holds this many words.
        split_pattern: word regex for raw text; default :func:`default_split_pattern`.
        dtype: ``"float32"`` (default, exact), ``"bfloat16"`` or ``"float16"`` for the encoder's weights
            and activations; log-probabilities and decoding stay float32. On CPUs with native bf16
            (AVX512-BF16, AMX) ``bfloat16`` is about 1.7x faster and changes a few predictions
            (CoNLL-2003 test: 0.5% of sentences; see docs/benchmarks.md).
        context_size: sub-words of document context on each side of an input (:mod:`nerfocal.context`;
            inputs are grouped by ``Document.document_id``); default the training run's
            (``config.nerfocal_context_size``), else 0.
        context_pack: with context, read consecutive sentences of a document of at most this many
            sub-words in all in one window, with the left context of the first and the right context of
            the last (faster: docs/context.md#packing); capped at what the window leaves besides the
            two contexts. Default: the training run's (``config.nerfocal_context_pack``, so a model
            trained on packed runs reads packed runs), else 0: each sentence in a window of its own.
        o_bias: taken off ``O``'s log-probability before decoding (:mod:`nerfocal.decision`); default the
            training run's (``config.nerfocal_o_bias``), else 0. Entity scores stay the model's probabilities.
        pack: several windows per row of the forward pass (:mod:`nerfocal.forward`) instead of padding
            them; for small unsorted batches (``nerfocal serve``). Off when the model fails the check.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: str | torch.device | None = None,
        decode: str = "viterbi",
        temperature: bool = True,
        max_length: int | None = None,
        stride: int | None = None,
        batch_tokens: int = 4096,
        max_batch_size: int = 256,
        chunk_size: int = 2048,
        chunk_words: int = 200_000,
        split_pattern: str | None = None,
        dtype: str = "float32",
        context_size: int | None = None,
        context_pack: int | None = None,
        o_bias: float | None = None,
        pack: bool = False,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"expected dtype in {tuple(DTYPES)}, got {dtype!r}")
        if decode not in DECODERS:
            raise ValueError(f"expected decode in {DECODERS}, got {decode!r}")
        if min(batch_tokens, max_batch_size, chunk_size, chunk_words) < 1:
            raise ValueError(
                "expected positive sizes, got "
                f"{batch_tokens=}, {max_batch_size=}, {chunk_size=}, {chunk_words=}"
            )
        config = model.config
        self.labels = labels_from_config(config, Path(getattr(config, "_name_or_path", "") or "<model>"))
        self.scheme = check_scheme(getattr(config, "nerfocal_tag_scheme", None) or self._guess_scheme())
        self.temperature = float(getattr(config, "nerfocal_temperature", None) or 1.0) if temperature else 1.0
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"expected a positive finite nerfocal_temperature, got {self.temperature}")
        self.device = resolve_device(device)
        self.model = model.to(self.device, dtype=DTYPES[dtype]).eval()
        self.tokenizer = tokenizer
        self.decode = decode
        self.batch_tokens, self.max_batch_size = batch_tokens, max_batch_size
        self.chunk_size, self.chunk_words = chunk_size, chunk_words
        self.split_pattern = split_pattern
        if split_pattern is not None:
            compile_pattern(split_pattern)
        model_limit = model_max_length(self.model, tokenizer)
        if max_length is not None and not 0 < max_length <= model_limit:
            raise ValueError(f"expected max_length in 1..{model_limit} (the model's limit), got {max_length}")
        trained = getattr(config, "nerfocal_max_length", None)  # the windows the model was trained on
        default = min(trained, model_limit) if isinstance(trained, int) and trained > 0 else model_limit
        self.max_length = max_length or default
        embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        if embeddings is not None and getattr(embeddings, "num_embeddings", len(tokenizer)) < len(tokenizer):
            raise ValueError(
                f"expected a tokenizer of at most {embeddings.num_embeddings} ids (the model's vocabulary), "
                f"got {len(tokenizer)}: the tokenizer does not belong to this model"
            )
        self.stride = default_stride(tokenizer, self.max_length, stride)
        budget = self.max_length - tokenizer.num_special_tokens_to_add(pair=False)
        # the context the model was trained with (and its packing), unless given
        self.context_size, self.context_pack = saved_context(config, context_size, context_pack, budget)
        self.constraints = transition_constraints(self.labels, self.scheme)
        self.outside = outside_id(self.labels)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        saved_bias = getattr(config, "nerfocal_o_bias", None)
        self.o_bias = float(parse_o_bias(saved_bias or 0) if o_bias is None else parse_o_bias(o_bias))
        self.pack = bool(pack) and supports_packing(self.model, self.pad_id, self.device, len(tokenizer))

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, trust_remote_code: bool = False, backend: str = "auto", **kwargs: Any
    ) -> Predictor:
        """Load a directory written by training (``save_pretrained``) or by ``nerfocal export``.

        ``backend``: ``"torch"``, ``"onnx"`` (ONNX Runtime on the CPU, needs ``nerfocal[onnx]``) or
        ``"auto"``: ONNX when the directory holds ``model.onnx`` and no ``model.safetensors``.
        ``kwargs`` go to the constructor.
        """
        if choose_backend(path, backend) == "onnx":
            model, tokenizer = load_onnx(path)
            if kwargs.get("device") in (None, "auto"):
                kwargs["device"] = "cpu"
            return cls(model, tokenizer, **kwargs)
        model, tokenizer = load_pretrained(path, trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, **kwargs)

    def _guess_scheme(self) -> str:
        return label_scheme(self.labels)

    def document(self, item: str | Sequence[str]) -> Document:
        """A :class:`Document` from a text (split into words) or a list of tokens (used as is)."""
        if isinstance(item, str):
            return Document.from_text(item, self.split_pattern)
        if isinstance(item, Sequence) and all(isinstance(token, str) for token in item):
            return Document(list(item))
        raise TypeError(f"expected a text or a list of token strings, got {type(item).__name__}")

    def __call__(self, inputs: str | Sequence[str] | Sequence[Sequence[str]]) -> Any:
        """Entities of one text (``list[Entity]``), or of each text / token list (``list[list[Entity]]``).

        Offsets are characters into each text, or token indices for token lists. A list of strings
        is a list of texts: wrap a single token list in a list.
        """
        if isinstance(inputs, str):
            return self([inputs])[0]
        return [p.entities for p in self.predict_documents(self.document(x) for x in inputs)]

    def predict_sentences(
        self, documents: Sequence[Sequence[str | Sequence[str]]]
    ) -> list[list[list[Entity]]]:
        """Entities of each sentence of each document: ``documents[d][s]`` is a text or a token list.

        Each sentence is read with up to ``context_size`` sub-words of the sentences around it in its
        document (never of another document); offsets are into each sentence, as in :meth:`__call__`.
        """
        inputs = [
            dataclasses.replace(self.document(sentence), document_id=str(d))
            for d, sentences in enumerate(documents)
            for sentence in sentences
        ]
        predictions = iter(self.predict_documents(inputs))
        return [[next(predictions).entities for _ in sentences] for sentences in documents]

    def predict_documents(
        self, documents: Iterable[Document], *, add_context: bool = True
    ) -> Iterator[Prediction]:
        """Stream predictions in input order, buffering at most ``chunk_size`` documents.

        A chunk also ends once it holds ``chunk_words`` words, so that memory stays bounded when
        documents are long. With ``context_size``, each input first gets its document context
        (:meth:`with_context`) unless ``add_context`` is False: the documents come with theirs already
        (:meth:`context_reader`, run by the process that reads the input).
        """
        if self.context_size > 0 and add_context:
            documents = self.with_context(documents)
        for chunk in document_chunks(documents, self.chunk_size, self.chunk_words):
            yield from self.predict_chunk(chunk)

    def context_reader(self) -> ContextReader | None:
        """What gives documents their context as this predictor does (picklable; None without context)."""
        if self.context_size <= 0:
            return None
        budget = self.max_length - self.tokenizer.num_special_tokens_to_add(pair=False)
        return ContextReader(self.tokenizer, budget, self.context_size, self.context_pack)

    def with_context(self, documents: Iterable[Document]) -> Iterator[Document]:
        """The documents with their ``context`` (:class:`nerfocal.context_reader.ContextReader`), streamed."""
        reader = self.context_reader()
        return reader(documents) if reader is not None else iter(documents)

    @torch.inference_mode()
    def predict_chunk(self, documents: Sequence[Document]) -> list[Prediction]:
        """Predict a list of documents together (sorted by length internally); a document's
        ``context`` words, when set, are read around it (never tagged)."""
        nonempty = [i for i, doc in enumerate(documents) if doc.words]
        word_lists = [documents[i].words for i in nonempty]
        results = [Prediction(doc, [], []) for doc in documents]
        if not word_lists:
            return results
        contexts = [documents[i].context or ([], []) for i in nonempty]
        units, unit_contexts = merge_shared_windows(word_lists, contexts)  # packed runs: one window
        any_context = any(a or b for a, b in unit_contexts)
        log_probs = self._word_log_probs(units, unit_contexts if any_context else None)
        decision = log_probs.clone()  # [words, C]: the O bias moves the decision, not the scores
        decision[:, self.outside] -= self.o_bias
        lengths = torch.tensor([len(words) for words in word_lists])
        offsets = torch.cumsum(lengths, 0) - lengths

        def store(row: int, tag_ids: torch.Tensor, probs: torch.Tensor) -> None:
            doc_index = nonempty[row]
            n = len(documents[doc_index].words)
            results[doc_index].tags = [self.labels[t] for t in tag_ids[:n].tolist()]
            results[doc_index].scores = probs[:n].tolist()

        order = torch.argsort(lengths, descending=True, stable=True).tolist()
        if self.decode == "viterbi":  # very long documents: Viterbi in overlapping segments
            while order and int(lengths[order[0]]) > VITERBI_SEGMENT:
                row, order = order[0], order[1:]
                span = slice(int(offsets[row]), int(offsets[row] + lengths[row]))
                doc_log_probs = log_probs[span]  # [T, C]
                tag_ids = self._viterbi_segments(decision[span])  # [T]
                store(row, tag_ids, doc_log_probs.gather(1, tag_ids.unsqueeze(1)).squeeze(1).exp())
        budget = max(self.batch_tokens * 16, int(lengths.max()))
        while order:  # groups of similar length, at most `budget` padded word positions each
            steps = int(lengths[order[0]])
            group, order = order[: max(1, budget // steps)], order[max(1, budget // steps) :]
            index = torch.tensor(group)
            positions = torch.arange(steps)
            gather = offsets[index, None] + torch.minimum(positions, lengths[index, None] - 1)  # [B, T]
            group_log_probs = log_probs[gather]  # [B, T, C]
            tag_ids = decode(decision[gather], lengths[index], self.decode, self.constraints)  # [B, T]
            probs = group_log_probs.gather(2, tag_ids.unsqueeze(2)).squeeze(2).exp()  # [B, T]
            for k, row in enumerate(group):
                store(row, tag_ids[k], probs[k])
        return results

    def _viterbi_segments(self, log_probs: torch.Tensor) -> torch.Tensor:
        """One long document ``[T, C]`` -> tag ids ``[T]``: :func:`nerfocal.decode.viterbi_segments`."""
        return viterbi_segments(
            log_probs, self.constraints, per_group=max(1, self.batch_tokens * 16 // VITERBI_SEGMENT)
        )

    def _word_log_probs(
        self, word_lists: list[list[str]], contexts: list[tuple[list[str], list[str]]] | None = None
    ) -> torch.Tensor:
        """Tag log-probabilities at each word's first sub-word: float ``[total_words, C]``, words in order.

        ``contexts``: ``(left, right)`` words around each word list, in its window but never read.
        """
        lengths = torch.tensor([len(words) for words in word_lists])
        word_offsets = torch.cumsum(lengths, 0) - lengths
        total = int(lengths.sum())
        spans = (torch.tensor([len(left) for left, _ in contexts]), lengths) if contexts else (None, None)

        def readers(
            lists: list[list[str]],
        ) -> tuple[list[list[int]], torch.Tensor, torch.Tensor, torch.Tensor]:
            """``(input_ids, selected, keys, covered)`` of the windows of ``lists`` in their context."""
            if contexts:
                lists = [left + words + right for words, (left, right) in zip(lists, contexts, strict=True)]
            input_ids, word_ids, window_docs = tokenize_windows(
                self.tokenizer, lists, self.max_length, self.stride
            )
            return input_ids, *select_readers(word_ids, window_docs, word_offsets, total, *spans)

        input_ids, selected, keys, covered = readers(word_lists)
        unk = self.tokenizer.unk_token
        if not bool(covered.all()) and unk is not None:
            # words that become zero sub-words (zero-width space, BOM, control characters) -> unk token
            missing = set((~covered).nonzero().squeeze(1).tolist())
            word_lists = [
                [unk if offset + i in missing else w for i, w in enumerate(words)]
                for words, offset in zip(word_lists, word_offsets.tolist(), strict=True)
            ]
            input_ids, selected, keys, covered = readers(word_lists)
        if not bool(covered.all()):
            logger.warning(
                "%d word(s) have no sub-word for this tokenizer; they are tagged O", int((~covered).sum())
            )
        # words without a sub-word get log p(O) = 0
        out = torch.full((total, len(self.labels)), float("-inf"))
        out[:, self.outside] = 0.0
        window_lengths = [len(ids) for ids in input_ids]
        groups = forward_groups(
            window_lengths,
            batch_tokens=self.batch_tokens,
            max_batch_size=self.max_batch_size,
            pack=self.pack,
        )
        for batch in groups:
            width = window_lengths[batch[0]]
            out_rows = self._forward([input_ids[r] for r in batch], width)  # [b, width, C]
            index = torch.tensor(batch)
            mask = selected[index, :width]
            out[keys[index, :width][mask]] = out_rows[mask]
        return out

    def _forward(self, rows: list[list[int]], width: int) -> torch.Tensor:
        """Log-softmax of temperature-scaled logits of rows (padded or packed): ``[b, width, C]``, CPU."""
        forward = packed_logits if self.pack else padded_logits
        logits = forward(self.model, rows, width, self.pad_id, self.device)
        return torch.log_softmax(logits.float() / self.temperature, dim=-1).cpu()
