"""Tests of spurnb.methods.baselines through the registry: every method x every policy it declares takes one step with a finite,
non-zero gradient on every trainable parameter; every registered policy is used by some method; resume after a kill equals
an uninterrupted run for GroupDRO (its group weights) and JTT (its two stages); bad options and data raise by name.

A 160-image benchmark and a randomly initialised tiny CLIP (the same world as tests/test_train.py).
"""
import json, shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from spurnb.methods import METHODS, make_method
from spurnb.models import POLICIES
from spurnb.methods.baselines import check_one_step
from spurnb.train import TrainConfig, train
from test_train import make_world, Stop, assert_same_run

QUICK = TrainConfig(optimizer="adam", lr=1e-3, epochs=3, batch_size=32, ckpt_steps=2)


@pytest.fixture(scope="module")
def world():
    splits, task, ad = make_world()
    with torch.no_grad():   # open_clip starts each residual block's last BatchNorm scale at 0: no gradient reaches the branch
        for n, p in ad.model.named_parameters():
            if n.endswith("bn3.weight"): p.fill_(1.0)
    return splits, task, ad


def _batch(splits, ad, m):
    tr = splits["train"]
    idx = torch.cat([torch.nonzero(tr.g == k).flatten()[:4] for k in range(4)])   # every group
    x = ad.preprocess_batch(tr.images[idx.numpy()])
    if m.inputs == "features":
        with torch.no_grad(): x = ad.image_trunk(x)
    return dict(x=x, y=tr.y[idx].long(), a=tr.a[idx].long(), g=tr.g[idx].long(), idx=idx)


CROSS = [(n, p) for n, c in sorted(METHODS.items()) if c.trains for p in c.policies]

@pytest.mark.parametrize("name,policy", CROSS)
def test_every_method_every_policy_one_step(world, name, policy):
    splits, task, ad = world
    m = make_method(name, ad, task, policy=policy)
    assert m.trainable(), f"{name} under {policy} trains nothing"
    assert check_one_step(m, _batch(splits, ad, m)) == []


def test_the_step_check_fails_for_a_head_nobody_uses(world):
    "The check above is not vacuous: a method with a trainable head its loss never calls fails it (as the removed linear-probe policy did)."
    splits, task, ad = world
    class Probe(METHODS["erm"]):
        def __init__(self, *a, **k): super().__init__(*a, **k); self.probe = torch.nn.Linear(4, 2)   # trained, never called
    m = Probe(ad, task)
    assert check_one_step(m, _batch(splits, ad, m)) == ["probe.weight", "probe.bias"]


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_every_policy_is_used_by_a_method(policy):
    "A registered policy no method supports is dead code (as the removed linear-probe policy was)."
    users = [n for n, c in METHODS.items() if policy in c.policies]
    assert users, f"policy {policy!r} is supported by no method (methods declare theirs in `policies`): remove it or add the method that uses it"


def test_groupdro_resume_after_a_kill_equals_uninterrupted(world, tmp_path):
    splits, task, ad = world
    cfg = replace(QUICK, method="groupdro", opts=dict(eta=0.5))
    ref = train(cfg, ad, splits, tmp_path / "ref", task, progress=False)
    q_ref = torch.load(Path(ref["run_dir"]) / "last.pt", weights_only=True)["method"]["own"]["q"]
    assert not torch.allclose(q_ref, torch.full((4,), 0.25))              # the weights moved
    def kill(run, event):
        if event != "after_step": return
        if run.global_step == 4: shutil.copy(run.dir / "last.pt", run.dir / "kept.pt")
        if run.global_step == 9: raise Stop("killed")
    with pytest.raises(Stop): train(cfg, ad, splits, tmp_path / "kill", task, callbacks=[kill], progress=False)
    d = next((tmp_path / "kill").iterdir()); shutil.move(d / "kept.pt", d / "last.pt")
    got = train(cfg, ad, splits, tmp_path / "kill", task, resume=True, progress=False)
    assert_same_run(got, ref)
    assert torch.equal(torch.load(d / "last.pt", weights_only=True)["method"]["own"]["q"], q_ref)


@pytest.mark.parametrize("stage", ["erm", "jtt"])
def test_jtt_resume_after_a_kill_in_either_stage_equals_uninterrupted(world, tmp_path, stage):
    splits, task, ad = world
    cfg = replace(QUICK, method="jtt", opts=dict(stage1_epochs=2, lambda_up=10))
    ref = train(cfg, ad, splits, tmp_path / "ref", task, progress=False)
    ref_stage1 = json.loads((Path(ref["run_dir"]) / "stage1.json").read_text())
    def kill(run, event):   # in stage `stage`: keep the checkpoint of step 4, die at step 7
        if event != "after_step" or run.cfg.method != stage: return
        if run.global_step == 4: shutil.copy(run.dir / "last.pt", run.dir / "kept.pt")
        if run.global_step == 7: raise Stop("killed")
    with pytest.raises(Stop): train(cfg, ad, splits, tmp_path / "kill", task, callbacks=[kill], progress=False)
    d = next(p for p in (tmp_path / "kill").iterdir() if (p / "kept.pt").exists()); shutil.move(d / "kept.pt", d / "last.pt")
    got = train(cfg, ad, splits, tmp_path / "kill", task, resume=True, progress=False)
    assert_same_run(got, ref)
    s1 = json.loads((Path(got["run_dir"]) / "stage1.json").read_text())
    assert s1["n_errors"] == ref_stage1["n_errors"] and s1["errors_per_group"] == ref_stage1["errors_per_group"]
    runs = sorted(p.name.split("-")[0] for p in (tmp_path / "kill").iterdir())
    assert runs == ["erm", "jtt"]                                           # the two stages are two runs


def test_jtt_reuses_stage1_and_refuses_without_it(world, tmp_path):
    splits, task, ad = world
    cfg = replace(QUICK, method="jtt", epochs=2, opts=dict(stage1_epochs=1))
    with pytest.raises(FileNotFoundError, match=r"no finished stage-1 run .* \(option train_stage1"):
        train(replace(cfg, opts=dict(stage1_epochs=1, train_stage1=False)), ad, splits, tmp_path, task, progress=False)
    a = train(cfg, ad, splits, tmp_path, task, progress=False)
    rel = json.loads((Path(a["run_dir"]) / "stage1.json").read_text())["stage1_run"]
    assert not Path(rel).is_absolute()                                      # relative to the run directory: runs can be moved
    stage1 = (Path(a["run_dir"]) / rel).resolve()
    mtime = (stage1 / "final.json").stat().st_mtime_ns
    b = train(replace(cfg, opts=dict(stage1_epochs=1, train_stage1=False, lambda_up=5)), ad, splits, tmp_path, task, progress=False)
    assert (stage1 / "final.json").stat().st_mtime_ns == mtime            # stage 1 read back, not trained again
    assert (Path(b["run_dir"]) / json.loads((Path(b["run_dir"]) / "stage1.json").read_text())["stage1_run"]).resolve() == stage1


# (out-of-range values of each baseline's own options are checked next to each baseline in nbs/14_baselines.ipynb)
@pytest.mark.parametrize("name,opts,msg", [
    ("erm", dict(eta=0.1), "has no option 'eta'"),
    ("groupdro", dict(etta=0.1), "did you mean 'eta'"),
])
def test_bad_options_raise_by_name(world, name, opts, msg):
    splits, task, ad = world
    with pytest.raises((ValueError, TypeError), match=msg): make_method(name, ad, task, **opts)


def test_bad_data_raises_by_split(world, tmp_path):
    splits, task, ad = world
    with pytest.raises(ValueError, match="needs a 'heldout' split"):
        train(replace(QUICK, method="dfr", opts=dict(split="heldout")), ad, splits, tmp_path, task, progress=False)
    v = splits["val"]
    gap = dict(splits, val=v.subset((v.g != 3).nonzero().flatten().numpy()))
    with pytest.raises(ValueError, match="needs examples of every group in the 'val' split"):
        train(replace(QUICK, method="dfr"), ad, gap, tmp_path / "g", task, progress=False)
    with pytest.raises(ValueError, match="jtt samples by its own upweighting"):
        train(replace(QUICK, method="jtt", sampler="balanced"), ad, splits, tmp_path / "j", task, progress=False)
