"""Write the small synthetic NER sample in data/sample/ (train/dev/test, CoNLL format, IOB2).

    python scripts/make_sample_data.py [--out data/sample] [--seed 13]

Sentences are generated from templates and name lists written for nerfocal (no licensed corpus is
copied). The data is imbalanced like real NER data: ``O`` dominates, PER/ORG/LOC are common and
EVENT is rare. A share of the names in dev/test never occurs in train, so the model has to use context.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

FIRST = [
    "Anna",
    "Marco",
    "Lena",
    "Tomas",
    "Priya",
    "Kenji",
    "Sofia",
    "Omar",
    "Elif",
    "Jonas",
    "Maya",
    "Diego",
    "Ines",
    "Viktor",
    "Nadia",
    "Pavel",
    "Clara",
    "Ravi",
    "Ada",
    "Felix",
]
LAST = [
    "Novak",
    "Berger",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Rossi",
    "Haddad",
    "Kowalski",
    "Brennan",
    "Silva",
    "Petrov",
    "Weber",
    "Adeyemi",
    "Costa",
    "Larsen",
]
CITIES = [
    "Lisbon",
    "Kraków",
    "Nairobi",
    "Osaka",
    "Toronto",
    "Valencia",
    "Tbilisi",
    "Quito",
    "Lyon",
    "Dublin",
    "Hanoi",
    "Tampere",
    "Porto",
    "Accra",
    "Leipzig",
    "Perth",
]
COUNTRIES = [
    "Chile",
    "Norway",
    "Kenya",
    "Vietnam",
    "Portugal",
    "New Zealand",
    "Peru",
    "Ghana",
    "Finland",
    "Georgia",
]
ORG_HEADS = [
    "Orion",
    "Vertex",
    "Bluefield",
    "Northwind",
    "Halcyon",
    "Meridian",
    "Cobalt",
    "Redstone",
    "Lumen",
    "Sable",
    "Tessera",
    "Quarry",
]
ORG_TAILS = [
    "Labs",
    "Group",
    "Bank",
    "Motors",
    "Systems",
    "University",
    "Press",
    "Holdings",
    "Airlines",
    "Council",
]
EVENTS = [
    "Harvest Festival",
    "Winter Summit",
    "Open Data Week",
    "River Marathon",
    "Lantern Fair",
    "Film Days",
]

TEMPLATES = [
    "{PER} joined {ORG} last spring .",
    "{PER} , a spokesperson for {ORG} , declined to comment .",
    "Shares of {ORG} rose 3 percent in early trading .",
    "The talks in {LOC} ended without an agreement .",
    "{PER} flew from {LOC} to {LOC} on Monday .",
    "{ORG} will open a new office in {LOC} next year .",
    "According to {PER} , the project is on schedule .",
    "Police in {LOC} said two people were injured .",
    "The {EVENT} in {LOC} drew thousands of visitors .",
    "{PER} met {PER} at the {EVENT} .",
    "Analysts expect {ORG} to report higher profits .",
    "Rain is expected across {LOC} for the rest of the week .",
    "The committee approved the budget after a long debate .",
    "Prices fell for the third month in a row , the report said .",
    "{PER} said the decision was final .",
    "Officials from {ORG} and {ORG} signed the deal in {LOC} .",
    "The match was postponed because of heavy snow .",
    "Talks between the two sides will resume on Friday .",
    "Organisers of the {EVENT} said tickets had sold out .",
    "{PER} , who grew up in {LOC} , now works for {ORG} .",
    "The minister visited {LOC} and promised new roads .",
    "Most schools will stay closed until the end of the month .",
    "Output rose 2.5 percent compared with a year earlier .",
    "{ORG} hired {PER} as its new chief executive .",
]


def _pool(items: list[str], held_out: bool) -> list[str]:
    """The last quarter of every name list only occurs in dev/test ("held-out" names)."""
    cut = len(items) * 3 // 4
    return items[cut:] if held_out else items[:cut]


def entity(kind: str, rng: random.Random, held_out: bool) -> list[str]:
    if kind == "PER":
        words = [rng.choice(_pool(FIRST, held_out))] if rng.random() < 0.3 else []
        return [*words, rng.choice(_pool(LAST, held_out))]
    if kind == "LOC":
        return rng.choice(_pool(CITIES + COUNTRIES, held_out)).split()
    if kind == "ORG":
        head = rng.choice(_pool(ORG_HEADS, held_out))
        return [head] + ([rng.choice(ORG_TAILS)] if rng.random() < 0.7 else [])
    return rng.choice(EVENTS).split()


def sentence(rng: random.Random, held_out_rate: float) -> tuple[list[str], list[str]]:
    template = rng.choice(TEMPLATES)
    tokens: list[str] = []
    tags: list[str] = []
    for piece in template.split():
        if piece.startswith("{") and piece.endswith("}"):
            kind = piece[1:-1]
            words = entity(kind, rng, rng.random() < held_out_rate)
            tokens += words
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        else:
            tokens.append(piece)
            tags.append("O")
    return tokens, tags


def write(path: Path, sentences: list[tuple[list[str], list[str]]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for tokens, tags in sentences:
            handle.writelines(f"{tok} {tag}\n" for tok, tag in zip(tokens, tags, strict=True))
            handle.write("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/sample", help="output folder")
    parser.add_argument("--seed", type=int, default=13, help="random seed")
    parser.add_argument("--sizes", default="1200,300,300", help="train,dev,test sentence counts")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(n) for n in args.sizes.split(",")]
    for name, size, held_out in zip(("train", "dev", "test"), sizes, (0.0, 0.5, 0.5), strict=True):
        write(out / f"{name}.conll", [sentence(rng, held_out) for _ in range(size)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
