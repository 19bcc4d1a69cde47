"""Two-process DDP on CPU: the reference follows the sync rule on both ranks, and ranks agree."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def launch(script: str, out_dir, *args: str) -> None:
    """Run a script that starts a 2-process CPU DDP fit (Lightning re-launches it for rank 1)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [sys.executable, str(REPO / "tests" / script), str(out_dir), *args], check=True, env=env, cwd=REPO, timeout=300
    )


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_ddp_two_ranks_follow_sync_rule(tmp_path, lora):
    """Both ranks: the reference (with LoRA, the reference adapter) holds the previous step's policy, and the
    ranks agree on policy and reference."""
    launch("ddp_sync_script.py", tmp_path, *(["lora"] if lora else []))
    reports = [json.loads((tmp_path / f"{'lora_' if lora else ''}rank{r}.json").read_text()) for r in (0, 1)]
    for report in reports:
        assert report["world_size"] == 2 and report["steps"] == 3
        assert all(report["ref_is_previous_policy"]), report
        assert all(report["ref_differs_from_policy"]), report
    assert reports[0]["policy_checksum"] == reports[1]["policy_checksum"]
    assert reports[0]["ref_checksum"] == reports[1]["ref_checksum"]


def test_kto_kl_estimate_is_reduced_across_ranks(tmp_path):
    """Local KL estimates differ between ranks; both use the mean over all mismatched pairs of both."""
    launch("ddp_kto_script.py", tmp_path)
    r0, r1 = (json.loads((tmp_path / f"kto_rank{r}.json").read_text()) for r in (0, 1))
    assert r0["local_sum"] / r0["local_count"] != r1["local_sum"] / r1["local_count"]
    expected = (r0["local_sum"] + r1["local_sum"]) / (r0["local_count"] + r1["local_count"])
    for report in (r0, r1):
        assert report["kl_mean"] == pytest.approx(expected, rel=1e-5)
        assert report["kl"] == pytest.approx(max(0.0, expected), rel=1e-5)
        assert report["loss_kl"] == pytest.approx(max(0.0, expected), rel=1e-5)  # the z0 the loss used


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_fsdp2_shards_follow_sync_rule(tmp_path, lora):
    """FSDP2 (ModelParallelStrategy) on 2 CPU processes: policy and reference are sharded alike, and each rank's
    reference shards (with LoRA: the reference adapter's) hold the previous step's policy shards, and after a sync
    the reference's forward equals the policy's within 1e-6 (no unit serves weights gathered before the sync)."""
    launch("fsdp_sync_script.py", tmp_path, *(["lora"] if lora else []))
    for r in (0, 1):
        report = json.loads((tmp_path / f"fsdp_{'lora_' if lora else ''}rank{r}.json").read_text())
        assert report["sharded"] == "DTensor" and report["steps"] == 3
        assert all(report["ref_is_previous_policy"]) and all(report["ref_differs_from_policy"]), report
        assert report["ref_forward_equals_policy_after_sync"] is True, report
