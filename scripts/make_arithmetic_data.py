"""Regenerate the shipped arithmetic data set (see ``hl_lightning/data/arithmetic.py`` for how it is made).

Usage: ``python scripts/make_arithmetic_data.py [--seed 0] [--n-train 400] [--n-test 400] [--out DIR]``
"""

from __future__ import annotations

import argparse

from hl_lightning.data.arithmetic import DATA_DIR, write_files


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and write the files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--n-train", type=int, default=400, help="train questions (default 400)")
    parser.add_argument("--n-test", type=int, default=400, help="test questions (default 400)")
    parser.add_argument("--out", default=str(DATA_DIR), help="output directory (default: the package data)")
    args = parser.parse_args(argv)
    for path in write_files(args.out, args.seed, args.n_train, args.n_test):
        print(path)


if __name__ == "__main__":
    main()
