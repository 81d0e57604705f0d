"""nerfocal: named-entity recognition with Hugging Face encoders and focal loss.

  nerfocal train configs/sample.yaml [--option value ...]
  nerfocal tune configs/sample.yaml --trials 12 [--option value ...]
  nerfocal predict --model DIR --input FILE
  nerfocal evaluate --model DIR --data FILE
  nerfocal plot losses | nerfocal plot training OUTPUT_DIR
  nerfocal report OUTPUT_DIR
  nerfocal card --model DIR [--repo-id user/name --push]
  nerfocal export --model DIR --output OUT [--quantize int8]
  nerfocal serve --model DIR [--host 127.0.0.1] [--port 8000]
  nerfocal convert IN OUT [--from FMT] [--to FMT] [--misaligned error|snap|drop]

Run `nerfocal COMMAND --help` for the options of a command.
"""

# Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
# heavy imports (torch, transformers) happen inside ``run`` so that ``nerfocal --help`` is instant.

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from nerfocal.io import Terminated, interrupt_status, raise_on_sigterm

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("nerfocal.cli.train", "fine-tune an encoder for NER (same as scripts/train_ner.py)"),
    "tune": ("nerfocal.cli.tune", "search the focal-loss settings on the dev set (optuna, resumable)"),
    "predict": ("nerfocal.cli.predict", "tag text, CoNLL or JSONL input with a trained model"),
    "evaluate": ("nerfocal.cli.evaluate", "seqeval report of a trained model on a labelled file"),
    "plot": ("nerfocal.cli.plot", "draw the loss-vs-p_t figure or a run's training curves (PNG)"),
    "report": ("nerfocal.cli.report", "HTML/Markdown report of a run: scores, confusions, errors"),
    "card": ("nerfocal.cli.card", "write a run's model card (README.md) and optionally push it to the Hub"),
    "export": ("nerfocal.cli.export", "export a model to ONNX (optionally int8), verified against PyTorch"),
    "serve": ("nerfocal.cli.serve", "serve a model over HTTP: JSON API, micro-batching, a browser page"),
    "convert": ("nerfocal.cli.convert", "convert CoNLL, JSONL, datasets, Label Studio, doccano, spaCy"),
}


def accept_both_spellings(parser: argparse.ArgumentParser) -> None:
    """``--input-format`` is also ``--input_format`` (and the reverse), as ``nerfocal train`` accepts both."""
    for action in list(parser._actions):
        for option in list(action.option_strings):
            if not option.startswith("--"):
                continue
            body = option[2:]
            other = "--" + (body.replace("-", "_") if "-" in body else body.replace("_", "-"))
            if other != option and other not in parser._option_string_actions:
                action.option_strings = [*action.option_strings, other]
                parser._option_string_actions[other] = action


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nerfocal", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if hasattr(module, "add_arguments"):
            module.add_arguments(p)
            accept_both_spellings(p)
            p.set_defaults(_module=module)
        else:  # `train` parses its own options (YAML + flags); see main()
            p.add_argument("options", nargs=argparse.REMAINDER, help="CONFIG.yaml and --option value pairs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nerfocal`` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["tune"]:
        from nerfocal.cli.tune import main as tune_main

        return tune_main(args_list[1:])
    if args_list[:1] == ["train"]:
        # train has its own config-file-aware parser (YAML defaults, CLI overrides)
        from nerfocal.cli.train import main as train_main

        return train_main(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        with raise_on_sigterm():  # SIGTERM raises, as SIGINT does: outputs remove their temporary file
            return int(args._module.run(args))
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"nerfocal {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as err:
        name, status = interrupt_status(err)
        message = f"nerfocal {args.command}: interrupted by {name}; stopped, no partial output file left"
        print(message, file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
