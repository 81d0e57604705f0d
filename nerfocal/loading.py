"""Load a saved token-classification model directory for inference: config, label map, tokenizer, weights.

Every failure is one ``ValueError`` / ``FileNotFoundError`` line naming the directory; nothing is
fetched from the hub. Used by :mod:`nerfocal.predict`; imports no training code.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

from nerfocal.labels import split_tag

__all__ = [
    "check_checkpoint",
    "check_model_source",
    "check_tokenizer",
    "labels_from_config",
    "load_pretrained",
    "load_tokenizer",
    "resolve_device",
    "resolve_model_path",
    "wrap_loading_errors",
]

PACKAGE_PREFIX = "package:"

# byte-level BPE tokenizers need a prefix space to tokenize pre-split words (as in training)
_PREFIX_SPACE_MODELS = frozenset({"roberta", "gpt2", "bart", "longformer", "deberta", "mpnet"})


# the files one of transformers' tokenizers is built from (one is enough)
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "sentencepiece.model",
    "tokenizer.model",
)


def check_tokenizer(tokenizer: Any, config: Any, source: str | Path) -> None:
    """``ValueError`` naming ``source`` when the tokenizer was built without its files.

    transformers 5 then builds a vocabulary of the special tokens alone, every word becomes the unknown
    token, and training and prediction run on nothing. Caught by the files of a local directory and by
    a vocabulary much smaller than the model's embeddings (``config.vocab_size``).
    """
    size = len(tokenizer)
    vocab = getattr(config, "vocab_size", None)
    directory = Path(source)
    no_files = directory.is_dir() and not any((directory / name).is_file() for name in TOKENIZER_FILES)
    too_small = isinstance(vocab, int) and vocab > 0 and size < vocab // 2
    if no_files or too_small:
        raise ValueError(
            f"{source}: no tokenizer files (expected one of {', '.join(TOKENIZER_FILES[:4])}, ...): the "
            f"tokenizer has {size} tokens for {vocab} embeddings; save the tokenizer with the model "
            "(tokenizer.save_pretrained) or set tokenizer_name"
        )


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


@contextlib.contextmanager
def wrap_loading_errors(path: str | Path, what: str) -> Iterator[None]:
    """Any exception of transformers / tokenizers / safetensors / the hub client inside the block becomes
    ``ValueError("PATH: cannot load WHAT (Type: first line)")``; nerfocal's own one-line errors pass."""
    try:
        yield
    except Exception as err:
        if isinstance(err, (ValueError, FileNotFoundError)) and str(err).startswith(f"{path}:"):
            raise  # already one line naming the model
        raise ValueError(f"{path}: cannot load {what} ({_one_line(err)})") from None


def labels_from_config(config: Any, directory: Path) -> list[str]:
    """The tags of ``config.id2label`` in id order; ``ValueError`` naming ``directory`` if unusable."""
    id2label = getattr(config, "id2label", None) or {}
    labels = [id2label.get(i, id2label.get(str(i))) for i in range(len(id2label))]
    if not labels or any(label is None for label in labels):
        raise ValueError(
            f"{directory}: config.json has no usable id2label; expected ids 0..N-1 mapped to tags"
        )
    if all(re.fullmatch(r"LABEL_\d+", str(label)) for label in labels):
        raise ValueError(
            f"{directory}: config.json has no label map (id2label is {labels[:3]}...); expected NER tags"
        )
    for label in labels:
        try:
            split_tag(str(label))
        except ValueError as err:
            raise ValueError(f"{directory}: config.json id2label: {err}") from None
    return [str(label) for label in labels]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"``: the first GPU if one is visible, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"expected a device like 'cpu', 'cuda' or 'cuda:1', got {device!r} ({err})"
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"expected an available device, got {device!r} (no GPU is visible to torch)")
    return resolved


def load_pretrained(path: str | Path, *, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from a directory written by ``save_pretrained``; never the hub.

    Raises:
        FileNotFoundError: no such directory, or no ``config.json`` in it.
        ValueError: no label map, a slow (non-Rust) tokenizer, or unreadable / incomplete weights;
            the message names the directory.
    """
    directory = Path(path)
    if not directory.exists():
        raise FileNotFoundError(f"{directory}: no such model directory")
    if not directory.is_dir():
        raise ValueError(f"{directory}: expected a model directory written by save_pretrained, got a file")
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(
            f"{directory}: no config.json; expected a directory written by save_pretrained"
        )
    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    # transformers, tokenizers and safetensors raise many exception types: report any as one line
    try:
        config = AutoConfig.from_pretrained(directory, **common)
    except Exception as err:
        raise ValueError(f"{directory}: cannot read config.json ({_one_line(err)})") from None
    labels_from_config(config, directory)
    extra = {"add_prefix_space": True} if getattr(config, "model_type", "") in _PREFIX_SPACE_MODELS else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, use_fast=True, **common, **extra)
    except Exception as err:
        raise ValueError(f"{directory}: cannot load the tokenizer ({_one_line(err)})") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{directory}: expected a fast (Rust) tokenizer with word ids, got {type(tokenizer).__name__}"
        )
    check_tokenizer(tokenizer, config, directory)
    try:
        model, info = AutoModelForTokenClassification.from_pretrained(
            directory, config=config, use_safetensors=True, output_loading_info=True, **common
        )
    except Exception as err:
        raise ValueError(f"{directory}: cannot load the model weights ({_one_line(err)})") from None
    missing = list(info.get("missing_keys") or [])
    if missing:
        raise ValueError(
            f"{directory}: model weights are incomplete ({len(missing)} missing, e.g. {missing[0]})"
        )
    return model, tokenizer


def resolve_model_path(name: str) -> str:
    """``package:<module>`` -> the ``model/`` folder shipped inside that installed Python package."""
    if not name.startswith(PACKAGE_PREFIX):
        return name
    import importlib.util

    module = name[len(PACKAGE_PREFIX) :]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model_name_or_path: package {module!r} is not installed "
            f"(pip install {module.replace('_', '-')})"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model_name_or_path: {folder} has no config.json")
    return str(folder)


def _looks_local(name: str) -> bool:
    return "/" in name or "\\" in name or name.startswith((".", "~")) or Path(name).exists()


def _check_config_json(path: Path) -> None:
    import json

    try:
        json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: expected JSON, got a syntax error ({err.msg})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read it ({_one_line(err)})") from None


def check_model_source(model_cfg: Any) -> str:
    """Check ``model_name_or_path`` (and ``tokenizer_name``) before any data is read; returns the resolved
    path or hub name. Loads nothing: it looks at the files, or asks the local hub cache when offline.

    A name that looks local (a path separator, a leading ``.`` or ``~``, or an existing path) must be a
    directory with a valid ``config.json`` and ``model.safetensors`` (or its index). Any other name is a
    hub name: it must be a valid repo id and, when the hub is offline, be in the local cache.

    Raises:
        FileNotFoundError: no such directory, or no ``config.json`` in it.
        ValueError: a broken ``config.json``, pickle weights only, a bad hub name, offline and not cached.
    """
    name = resolve_model_path(model_cfg.model_name_or_path)
    if _looks_local(name):
        directory = Path(name).expanduser()
        if not directory.exists():
            raise FileNotFoundError(f"model_name_or_path: {name}: no such model directory")
        if not directory.is_dir():
            raise ValueError(f"model_name_or_path: {name}: expected a model directory, got a file")
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(
                f"{directory}: no config.json; expected a model directory (save_pretrained)"
            )
        _check_config_json(directory / "config.json")
        weights = ("model.safetensors", "model.safetensors.index.json")
        if not any((directory / w).is_file() for w in weights):
            found = sorted(
                p.name for p in directory.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt")
            )
            raise ValueError(
                f"{directory}: no model.safetensors (found {', '.join(found) or 'no weights'}); nerfocal "
                "loads safetensors only, never pickle: convert with model.save_pretrained(dir)"
            )
        return name
    _check_hub_name(name)
    return name


def _check_hub_name(name: str) -> None:
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ValueError(
            f"model_name_or_path: {name!r}: expected a local directory or a hub name like "
            "'bert-base-cased' or 'org/model'"
        ) from None
    if constants.HF_HUB_OFFLINE and not isinstance(try_to_load_from_cache(name, "config.json"), str):
        raise ValueError(
            f"model_name_or_path: {name!r} is no local directory and not in the Hugging Face cache, and the "
            "hub is offline (HF_HUB_OFFLINE); expected a model directory or a cached hub model"
        )


def check_checkpoint(checkpoint: str | Path) -> None:
    """Every file of a Trainer checkpoint can be opened: JSON parses, safetensors headers cover the file,
    torch ``.pt``/``.pth`` zip archives have their central directory (a cut-short copy has not).

    Raises:
        ValueError: ``CHECKPOINT/FILE: cannot read the checkpoint (...)``, naming the first bad file.
    """
    import json
    import zipfile

    from safetensors import safe_open

    for path in sorted(Path(checkpoint).iterdir()):
        try:
            if path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as handle:
                    for key in handle.keys():  # noqa: SIM118 (not a dict)
                        handle.get_slice(key)
            elif path.suffix in (".pt", ".pth"):
                with zipfile.ZipFile(path) as archive:
                    archive.infolist()
        except Exception as err:
            raise ValueError(
                f"{path}: cannot read the checkpoint ({_one_line(err)}); resume from another "
                "checkpoint-N or start afresh"
            ) from None


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    """The fast tokenizer of an encoder to fine-tune (hub name or local directory); any loading error is
    one ``ValueError`` line naming ``path``."""
    with wrap_loading_errors(path, "the tokenizer"):
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        extra = {"add_prefix_space": True} if config.model_type in _PREFIX_SPACE_MODELS else {}
        tokenizer = AutoTokenizer.from_pretrained(
            path, use_fast=True, trust_remote_code=trust_remote_code, **extra
        )
    if not tokenizer.is_fast:
        raise ValueError(
            f"{path}: nerfocal needs a fast tokenizer (word_ids()); this model only has a slow one"
        )
    check_tokenizer(tokenizer, config, path)
    return tokenizer


# models whose position ids start at padding_idx + 1, so two position embeddings are never used
_OFFSET_POSITION_MODELS = frozenset({"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text"})


def model_max_length(model: Any, tokenizer: Any) -> int:
    """The longest sequence (special tokens included) the tokenizer and the position embeddings allow."""
    limits = []
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:
        limits.append(tokenizer_limit)
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        offset = 2 if getattr(model.config, "model_type", "") in _OFFSET_POSITION_MODELS else 0
        limits.append(positions - offset)
    return min(limits) if limits else 512
