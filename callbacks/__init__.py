"""Lightning callbacks for hl_lightning: humanline reference syncing and held-out evaluation."""

from callbacks.heldout_eval import HeldOutExactMatch
from callbacks.ref_sync import RefSyncCallback

__all__ = ["HeldOutExactMatch", "RefSyncCallback"]
