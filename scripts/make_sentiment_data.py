"""Regenerate the shipped sentiment task (see ``hl_lightning/data/sentiment.py`` for how it is made).

Usage: ``python scripts/make_sentiment_data.py [--seed 0] [--n-train 240] [--out DIR]``
"""

from __future__ import annotations

import argparse

from hl_lightning.data.sentiment import DATA_DIR, write_files


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and write the files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--n-train", type=int, default=240, help="train prompts (default 240 of 480)")
    parser.add_argument("--out", default=str(DATA_DIR), help="output directory (default: the package data)")
    args = parser.parse_args(argv)
    for path in write_files(args.out, args.seed, args.n_train):
        print(path)


if __name__ == "__main__":
    main()
