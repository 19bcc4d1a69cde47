"""``python -m hl_lightning`` = ``hl-lightning``."""

from hl_lightning.cli import main

if __name__ == "__main__":
    main()
