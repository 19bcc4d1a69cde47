"""The shipped run configs (YAML), installed as ``hl_lightning.configs``: ``hl-lightning configs list``."""
