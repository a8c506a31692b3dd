"""torchrun with two CPU processes (gloo) against one process (spurnb.distributed, nbs/04_distributed.ipynb).

A two-process job of the `full` policy (the trunk trains; group-balanced global batches of 21 rows, split 11 + 10, and a last one of
1 row, split 1 + 0) is killed after step 3 (rank 1 exits), then resumed by a second two-process job that also trains the
cached-feature policy and builds the trunk-feature cache sharded. Both runs must end with the weights, loss terms and metrics of
one-process runs with the same global batch, the test logits predicted sharded with those of one process, and the cache with the
same bytes under the same key.

Tolerance 1e-5, absolute, on weights, loss terms and test logits of order 0.1-10: what differs is float32 summation order (the
all-reduce adds the two ranks' partial gradients where one process sums the whole batch in one reduction; each rank's trunk runs 11
or 10 images instead of 21), ~1e-8 on the weights after one step. SGD at the reference's lr 1e-4 keeps it there over the 8 steps;
at lr 1e-3 the pretrained trunk's training is unstable (its accuracy falls) and, measured once, the difference grew to ~1e-3 in 8 steps
while one step left 7e-9: unstable training amplifies rounding, which is why the test does not use that rate. A real error moves far more than 1e-5: summing the ranks' gradients
instead of averaging them is caught (nbs/04_distributed.ipynb). Adam is not used either: it divides by the gradient's running RMS,
so a parameter whose gradient is zero up to rounding noise (the key bias of attention pooling) takes steps of order lr from noise.
A killed rank must end the job with a non-zero exit that names it; a rank that stops answering must end it after the timeout.
"""
import json, os, re, subprocess, sys, time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import spurnb.benchmark as B
from spurnb.cache import cached_image_features
from spurnb.methods import Task
from spurnb.models import load_clip
from spurnb.train import Source, TrainConfig, load_method, predict, train

JOB = Path(__file__).with_name("distributed_job.py")
CFG = TrainConfig(method="spurnb", sampler="balanced", optimizer="sgd", lr=1e-4, epochs=2, batch_size=21, ckpt_steps=3, opts=dict(policy="full"))
FEAT = replace(CFG, opts=dict(policy="projection"))    # the cached-feature policy
TOL = 1e-5


def small_world():
    "A 64-image benchmark and the tiny CLIP pretrained on it (shipped), the same in every process (global batches of 21: 11 + 10 rows, and a last one of 1: 1 + 0)."
    torch.manual_seed(0)
    b = B.make_benchmark(n_train=64, n_val=32, n_test=32, cache=False)
    task = Task.from_dataset(b.train, classnames=[list(m) for m in b.params["classes"].values()])
    return b.splits, task, load_clip("tiny-rn", pretrained="benchmark")   # pretrained: its predictions differ between images, so equal metrics mean something


def torchrun(out, cfgs, fault="", timeout=5.0):
    "Run tests/distributed_job.py in 2 processes; (completed process, seconds)."
    env = dict(os.environ, OMP_NUM_THREADS="1", SPURNB_DIST_TIMEOUT=str(timeout), SPURNB_PROGRESS="0")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(JOB), str(out), json.dumps([vars(c) for c in cfgs]), fault]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    return r, time.perf_counter() - t0


def after_fault(r) -> float:
    "Seconds from the injected fault (the time rank 1 printed) to the end of the job."
    return time.time() - float(re.search(r"the test's fault\) at t=([\d.]+)", r.stderr).group(1))


def _weights(run_dir):
    s = torch.load(Path(run_dir) / "last.pt", weights_only=True)["method"]
    return {f"{part}.{k}": v.float() for part in ("own", "adapter") for k, v in s[part].items()}


def _max_diff(a: dict, b: dict, keys) -> float:
    return max(abs(float(a[k]) - float(b[k])) for k in keys)


def compare_with_one_process(tmp: Path) -> dict:
    "Kill a 2-process job after step 3, resume it with 2 processes; the largest differences from one-process runs, and how the job died."
    splits, task, ad = small_world()
    refs = [train(c, ad, splits, tmp / "one", task, progress=False) for c in (CFG, FEAT)]
    killed, secs = torchrun(tmp / "two", [CFG], fault="exit:3")
    killed_after = after_fault(killed)
    done, _ = torchrun(tmp / "two", [CFG, FEAT])
    assert done.returncode == 0, done.stderr[-4000:]
    got = json.loads((tmp / "two" / "summaries.json").read_text())
    d = dict(weights=0.0, loss=0.0, metrics=0.0)
    for ref, s in zip(refs, got):
        assert Path(s["run_dir"]).name == Path(ref["run_dir"]).name      # the same run: its name does not depend on the number of processes
        w1, w2 = _weights(ref["run_dir"]), _weights(s["run_dir"])
        assert w1.keys() == w2.keys()
        d["weights"] = max(d["weights"], max(float((w1[k] - w2[k]).abs().max()) for k in w1))
        assert [r["epoch"] for r in ref["history"]] == [r["epoch"] for r in s["history"]]
        for r1, r2 in zip(ref["history"], s["history"]):
            d["loss"] = max(d["loss"], _max_diff(r1["train"], r2["train"], r1["train"]) if r1["train"] else 0.0)
            for split in ("val", "test"):
                keys = [k for k, v in r1[split].items() if isinstance(v, (int, float))]
                d["metrics"] = max(d["metrics"], _max_diff(r1[split], r2[split], keys))
    m = load_method(refs[0]["run_dir"], ad, task, "last")
    d["logits"] = float((predict(m, Source(splits["test"], m))["logits"] - torch.load(tmp / "two" / "test_logits.pt")).abs().max())
    one = cached_image_features(ad, splits["train"], root=tmp / "cache1", progress=False)
    files1, files2 = sorted(p.name for p in (tmp / "cache1").glob("*.npy")), sorted(p.name for p in (tmp / "two" / "cache").glob("*.npy"))
    d["cache_same_key"] = files1 == files2
    d["cache_bytes_equal"] = files1 == files2 and all((tmp / "cache1" / f).read_bytes() == (tmp / "two" / "cache" / f).read_bytes() for f in files1)
    d["cache_values_max_diff"] = float((one.float() - torch.from_numpy(np.load(tmp / "two" / "cache" / files2[0])).float()).abs().max())
    d.update(killed_exit=killed.returncode, killed_seconds=round(secs, 1), killed_seconds_after_the_fault=round(killed_after, 1),
             killed_stderr=killed.stderr)
    return d


def test_two_processes_equal_one(tmp_path):
    d = compare_with_one_process(tmp_path)
    print({k: v for k, v in d.items() if k != "killed_stderr"})
    assert d["killed_exit"] != 0 and d["killed_seconds_after_the_fault"] < 30   # torchrun notices the dead rank and stops the other
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)\s*\n\s*exitcode\s*:\s*3", d["killed_stderr"]), d["killed_stderr"][-3000:]   # torchrun names the dead rank
    assert d["weights"] < TOL and d["loss"] < TOL and d["logits"] < TOL and d["metrics"] == 0, d
    assert d["cache_same_key"] and d["cache_bytes_equal"], d


def test_a_rank_that_stops_answering_ends_the_job(tmp_path):
    "Rank 1 sleeps after step 3: rank 0 waits in the next collective for the timeout (3 s), then fails by name and torchrun stops the job."
    r, secs = torchrun(tmp_path, [CFG], fault="hang:3", timeout=3.0)
    waited = after_fault(r)
    assert r.returncode != 0 and 2.5 < waited < 3.0 + 30, waited        # it waited for the timeout, then ended
    assert "ProcessGroupError: rank 0 of 2: gathering the global batch's embeddings failed" in r.stderr, r.stderr[-3000:]
    assert "did not answer within the process-group timeout (3 s" in r.stderr
    print(f"rank 1 hung: the job ended {waited:.1f} s after the fault with exit {r.returncode};",
          next(l for l in r.stderr.splitlines() if "ProcessGroupError: " in l)[:400])
    assert torch.load(next((tmp_path / "runs").iterdir()) / "last.pt", weights_only=True)["global_step"] == 3   # rank 0 kept the last step
