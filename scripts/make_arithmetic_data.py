"""Regenerate the shipped arithmetic data set (see ``hl_lightning/data/arithmetic.py`` for how it is made).

Usage: ``python scripts/make_arithmetic_data.py [--seed 0] [--n-train 400] [--n-test 400] [--out DIR]``, or
``--like FILE --kind pairs --out FILE`` for templated rows on the questions of another file (the same as
``python -m hl_lightning.data.arithmetic``).
"""

from hl_lightning.data.arithmetic import main

if __name__ == "__main__":
    main()
