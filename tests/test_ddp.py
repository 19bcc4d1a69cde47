"""Two-process DDP on CPU: the reference follows the sync rule on both ranks, and ranks agree."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ddp_two_ranks_follow_sync_rule(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, str(REPO / "tests" / "ddp_sync_script.py"), str(tmp_path)],
                   check=True, env=env, cwd=REPO, timeout=300)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for report in reports:
        assert report["world_size"] == 2 and report["steps"] == 3
        assert all(report["ref_is_previous_policy"]), report
        assert all(report["ref_differs_from_policy"]), report
    assert reports[0]["policy_checksum"] == reports[1]["policy_checksum"]
    assert reports[0]["ref_checksum"] == reports[1]["ref_checksum"]
