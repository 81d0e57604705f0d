"""Write (or rewrite) the model card README.md of a training run, following the Hub's conventions.

Examples:
    nerfocal card --model outputs/sample
    nerfocal card --model outputs/sample --repo-id me/minilm-ner --push     # upload (needs internet)

Training writes the card by itself; this command regenerates it (for example after editing
nerfocal_config.yaml's language or domain) and can push the run to the Hugging Face Hub with the files
of docs/sharing.md (never checkpoints, pickles or predictions).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="a training output directory")
    parser.add_argument("--repo-id", default=None, help="the Hub repository the card names (user/name)")
    parser.add_argument("--push", action="store_true", help="upload the run to --repo-id (needs internet)")
    parser.add_argument("--private", action="store_true", help="with --push: create a private repository")


def run(args: argparse.Namespace) -> int:
    from nerfocal.card import write_model_card

    path = write_model_card(args.model, repo_id=args.repo_id)
    print(f"model card written to {path}")
    if args.push:
        if not args.repo_id:
            raise ValueError("--push: expected --repo-id user/name")
        from nerfocal.hub import push_run

        push_run(args.model, args.repo_id, private=args.private or None)
        print(f"pushed {args.model} to https://huggingface.co/{args.repo_id}")
    return 0
