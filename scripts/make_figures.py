"""Regenerate the README figures: the loss-vs-p_t figure and a sample report from a training run.

    python scripts/make_figures.py                          # docs/img/losses.png only
    python scripts/make_figures.py outputs/sample           # + docs/img/report_*.png, docs/sample_report.md
    python scripts/make_figures.py MODEL_DIR --data data/sample/test.conll   # a run without predictions

Everything is drawn by the `nerfocal plot` / `nerfocal report` commands, nothing by hand; the run
directory is only read (the report is built in a temporary folder, then its images are copied).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from nerfocal.cli import main as nerfocal

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", nargs="?", help="training output directory for the sample report")
    parser.add_argument("--data", help="labelled file to predict when the run has no predictions_*.jsonl")
    parser.add_argument("--img-dir", default=str(ROOT / "docs" / "img"), help="where the PNGs go")
    parser.add_argument(
        "--report-md", default=str(ROOT / "docs" / "sample_report.md"), help="the sample report (Markdown)"
    )
    args = parser.parse_args(argv)
    img_dir = Path(args.img_dir)
    img_dir.mkdir(parents=True, exist_ok=True)
    if nerfocal(["plot", "losses", "--output", str(img_dir / "losses.png")]) != 0:
        return 1
    if not args.run_dir:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        command = ["report", args.run_dir, "--report-dir", tmp, "--format", "md"]
        if args.data:
            command += ["--data", args.data]
        if nerfocal(command) != 0:
            return 1
        for png in sorted(Path(tmp, "report").glob("*.png")):
            shutil.copyfile(png, img_dir / f"report_{png.name}")
            print(f"wrote {img_dir / f'report_{png.name}'}")
        report_md = Path(args.report_md)
        link = Path(os.path.relpath(img_dir, report_md.parent)).as_posix()
        text = Path(tmp, "report.md").read_text(encoding="utf-8").replace("](report/", f"]({link}/report_")
        report_md.parent.mkdir(parents=True, exist_ok=True)
        report_md.write_text(text, encoding="utf-8")
        print(f"wrote {report_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
