"""Push a finished training run to the Hugging Face Hub: the model, its card and its reports.

``TrainingArguments``' own ``push_to_hub`` / ``hub_model_id`` push checkpoints during training; this
module uploads a *finished* run once, with the model card (:mod:`nerfocal.card`) and the evaluation
files, and without what should not be published (see :data:`UPLOAD_PATTERNS`). The upload itself
needs the network and is not exercised by the test suite; everything up to the ``HfApi`` calls is.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

# What a run directory publishes. Not uploaded: checkpoint-*/ (optimizer states, gigabytes),
# predictions_*.jsonl (they copy the evaluation data's text, which may not be yours to publish),
# training_args.bin (a pickle) and anything else not listed.
UPLOAD_PATTERNS = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",  # sentencepiece
    "README.md",
    "report.html",
    "report.md",
    "report/*.png",
    "eval_results.json",
    "eval_report.txt",
    "nerfocal_config.yaml",
    "trainer_state.json",
    "runs/**",  # TensorBoard event files: the Hub shows them as training metrics
)


REPORT_FILES = ("report.html", "report.md", "report/")


def upload_folder_contents(output_dir: str | Path, *, include_reports: bool = True) -> list[str]:
    """The files of ``output_dir`` that :func:`push_run` uploads, as sorted POSIX relative paths.

    Args:
        output_dir: a finished ``nerfocal train`` output directory.
        include_reports: also the run report (report.html, report.md, report/*.png); its error
            examples quote sentences of the evaluation data.

    Raises:
        FileNotFoundError: when ``output_dir`` holds no ``config.json`` and model weights.
    """
    out = Path(output_dir)
    files = sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and not p.is_symlink() and _wanted(p.relative_to(out).as_posix())
    )
    if not include_reports:
        files = [f for f in files if not f.startswith(REPORT_FILES)]
    if "config.json" not in files or not any(f.endswith(".safetensors") for f in files):
        raise FileNotFoundError(
            f"{out}: expected a trained model (config.json and *.safetensors), got {files}"
        )
    return files


def _wanted(relative: str) -> bool:
    if relative.startswith("checkpoint-"):
        return False
    for pattern in UPLOAD_PATTERNS:
        if pattern.endswith("/**"):
            if relative.startswith(pattern[:-2]):
                return True
        elif ("/" in pattern or "/" not in relative) and fnmatch.fnmatchcase(relative, pattern):
            return True  # a pattern without "/" names top-level files only
    return False


def check_no_secrets(output_dir: str | Path) -> None:
    """Refuse to publish a ``nerfocal_config.yaml`` holding a real ``hub_token``.

    transformers writes the placeholder ``<HUB_TOKEN>``; anything else there is treated as a secret.
    """
    path = Path(output_dir) / "nerfocal_config.yaml"
    if not path.is_file():
        return
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    token = config.get("hub_token") if isinstance(config, dict) else None
    if token not in (None, "", "<HUB_TOKEN>"):
        raise ValueError(f"{path}: expected no hub_token value (it would be published), got one; remove it")


def push_run(
    output_dir: str | Path,
    repo_id: str,
    token: str | None = None,
    private: bool | None = None,
    *,
    include_reports: bool = True,
    commit_message: str = "Upload nerfocal model",
) -> Any:
    """Create (or reuse) the Hub model repository ``repo_id`` and upload the run's files.

    Writes the model card first when ``output_dir`` has no ``README.md`` (an existing card, perhaps
    edited by hand, is kept).

    Args:
        output_dir: a finished ``nerfocal train`` output directory.
        repo_id: ``user/name`` or ``org/name``.
        token: a Hub token; default: the one ``huggingface-cli login`` / ``HF_TOKEN`` provides.
        private: create the repository private; None: the Hub's default. Ignored when it exists.
        include_reports: see :func:`upload_folder_contents`.
        commit_message: the commit's message.

    Returns:
        ``HfApi.upload_folder``'s result (the commit info).
    """
    from huggingface_hub import HfApi

    from nerfocal.card import write_model_card

    out = Path(output_dir)
    if not (out / "README.md").is_file():
        write_model_card(out, repo_id=repo_id)
    files = upload_folder_contents(out, include_reports=include_reports)
    check_no_secrets(out)
    api = HfApi(token=token)
    api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
    logger.info("uploading %d files from %s to %s", len(files), out, repo_id)
    return api.upload_folder(
        repo_id=repo_id,
        repo_type="model",
        folder_path=str(out),
        allow_patterns=[glob.escape(f) for f in files],
        commit_message=commit_message,
    )


def push_if_asked(args: Any, out: Path) -> Any:
    """With ``push_to_hub`` (TrainingArguments' own option): upload the finished run (model, tokenizer,
    card, report; :func:`nerfocal.hub.push_run`) to ``hub_model_id`` (default: the output folder's name).
    Checkpoints during training are pushed by Trainer itself, as ``hub_strategy`` says."""
    if not getattr(args, "push_to_hub", False):
        return None
    repo_id = args.hub_model_id or out.name
    logger.info("pushing %s to the Hugging Face Hub as %s", out, repo_id)
    return push_run(out, repo_id, token=args.hub_token, private=args.hub_private_repo)
