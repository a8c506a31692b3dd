"""Tests of spurnb.methods and spurnb.train: every registered method end to end, a loop that learns, gradients for every method
under every policy, resume-equals-uninterrupted (after an exception, after a simulated kill, and after a real SIGKILL of a training
process), and the command. Samplers, model selection and NaN detection are checked in nbs/15_train.ipynb.

Small on purpose (a 160-image benchmark, a randomly initialised tiny CLIP, 1-3 epochs): the notebooks run the larger checks.
"""
import json, shutil, subprocess, sys, textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import spurnb.data as D
import spurnb.benchmark as B
from spurnb.core import set_seed
from spurnb.methods import METHODS, Task, make_method
from spurnb.models import POLICIES, load_clip
from spurnb.train import TrainConfig, train, Run, Source, select_epoch
from spurnb.experiment import results_table, run_methods

QUICK = TrainConfig(optimizer="adam", lr=1e-3, epochs=2, batch_size=32)


def make_world():
    "A 160-image benchmark and a randomly initialised tiny CLIP, the same in every process."
    torch.manual_seed(0)
    b = B.make_benchmark(n_train=160, n_val=64, n_test=64, cache=False)
    task = Task.from_dataset(b.train, classnames=[list(m) for m in b.params["classes"].values()])
    return b.splits, task, load_clip("tiny-rn")


@pytest.fixture(scope="module")
def world(): return make_world()


@pytest.fixture(scope="module")
def swapped():
    """The pretrained tiny CLIP on a small benchmark whose classes are prompted by the *other* class's digits:
    the zero-shot head is then always wrong (validation accuracy 0 at epoch 0), so accuracy can rise only if the loop learns.
    (A randomly initialised tiny CLIP cannot serve: its trunk features are the same for every image, so nothing is learnable.)"""
    b = B.make_benchmark(n_train=160, n_val=64, n_test=64)
    members = [list(m) for m in b.params["classes"].values()]
    return b.splits, Task.from_dataset(b.train, classnames=members[::-1]), load_clip("tiny-rn", pretrained="benchmark")


class Stop(Exception): pass


def stop_at(step, keep=None):
    "A callback that copies last.pt at step `keep` and raises at step `step`."
    def cb(run, event):
        if event != "after_step": return
        if keep is not None and run.global_step == keep: shutil.copy(run.dir / "last.pt", run.dir / "kept.pt")
        if run.global_step == step: raise Stop(f"stop at {step}")
    return cb


def assert_same_run(got, ref):
    "Same per-epoch metrics and bit-identical best weights."
    assert json.dumps(got["history"]) == json.dumps(ref["history"])
    a = torch.load(Path(ref["run_dir"]) / "best.pt", weights_only=True)["method"]["adapter"]
    b = torch.load(Path(got["run_dir"]) / "best.pt", weights_only=True)["method"]["adapter"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_runs(world, tmp_path, name):
    splits, task, ad = world
    s = train(replace(QUICK, method=name), ad, splits, tmp_path, task, progress=False)
    d = Path(s["run_dir"])
    for f in ("config.json", "metrics.csv", "metrics.jsonl", "best.pt", "last.pt", "final.json"): assert (d / f).exists(), f
    assert s["test"]["n"] == len(splits["test"]) and len(s["history"]) == (3 if METHODS[name].trains else 1)
    assert s["best_epoch"] == (0 if not METHODS[name].trains else select_epoch(s["history"][1:], "worst-group")["epoch"])


def test_loop_learns(swapped, tmp_path):
    "The training loss falls, every trainable parameter moves, and validation accuracy rises far above epoch 0's; cosine, eval_every and ckpt_secs at work."
    splits, task, ad = swapped
    cfg = TrainConfig(method="erm", optimizer="adam", lr=1e-3, epochs=4, batch_size=32, schedule="cosine", eval_every=2, ckpt_secs=0)
    set_seed(cfg.seed)
    saved = []
    run = Run(cfg, ad, splits, tmp_path, task, callbacks=[lambda r, ev: ev == "after_epoch" and saved.append(r.saved_at)], progress=False)
    before = {n: p.detach().clone() for n, p in run.method.trainable()}
    h = run.fit()["history"]
    assert [r["epoch"] for r in h] == [0, 2, 4]                           # eval_every=2 (epoch 0 is the untrained head)
    assert h[0]["val"]["avg_acc"] < 0.1                                   # the swapped prompts: always wrong
    assert h[2]["val"]["avg_acc"] > h[0]["val"]["avg_acc"] + 0.3          # ERM learns the task from the labels
    assert h[2]["train"]["total"] < 0.5 * h[1]["train"]["total"]          # mean loss of epochs 3-4 vs epochs 1-2
    unchanged = [n for n, p in run.method.trainable() if torch.equal(p.detach(), before[n])]
    assert not unchanged, f"trained but unchanged: {unchanged}"
    assert h[1]["lr"] == pytest.approx(cfg.lr / 2) and h[2]["lr"] == pytest.approx(0, abs=1e-12)   # cosine: half-way, then 0
    assert len(saved) == 4 and all(a < b for a, b in zip(saved, saved[1:]))   # ckpt_secs=0: last.pt at every epoch end


@pytest.mark.parametrize("policy", [p for p in POLICIES if p != "zeroshot"])
@pytest.mark.parametrize("name", [m for m in sorted(METHODS) if METHODS[m].trains])
def test_every_trainable_parameter_gets_gradient(swapped, name, policy):
    "Methods x policies: a finite, non-zero gradient on every parameter a method declares trainable."
    splits, task, ad = swapped
    m = make_method(name, ad, task, policy=policy)
    batch = Source(splits["train"], m).batch(torch.arange(16))
    m.objective(m.loss(batch), batch).backward()
    bad = [n for n, p in m.trainable() if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0]
    assert m.trainable() and not bad, f"{name} under {policy!r}: no finite non-zero gradient for {bad}"


@pytest.mark.parametrize("sampler", ["natural", "balanced"])
def test_resume_equals_uninterrupted(world, tmp_path, sampler):
    splits, task, ad = world
    cfg = replace(QUICK, method="spurnb", sampler=sampler, epochs=3, ckpt_steps=2)
    ref = train(cfg, ad, splits, tmp_path / "ref", task, progress=False)
    # interrupted mid-epoch by an exception: the loop saves the last completed step
    with pytest.raises(Stop): train(cfg, ad, splits, tmp_path / "exc", task, callbacks=[stop_at(8)], progress=False)
    assert json.dumps(train(cfg, ad, splits, tmp_path / "exc", task, resume=True, progress=False)["history"]) == json.dumps(ref["history"])
    # killed: only the periodic checkpoint of step 4 survives
    with pytest.raises(Stop): train(cfg, ad, splits, tmp_path / "kill", task, callbacks=[stop_at(9, keep=4)], progress=False)
    d = next((tmp_path / "kill").iterdir()); shutil.move(d / "kept.pt", d / "last.pt")
    assert_same_run(train(cfg, ad, splits, tmp_path / "kill", task, resume=True, progress=False), ref)


# A child process that builds the fixture's world (`make_world`), trains, and SIGKILLs itself after step argv[4]:
# no exception, no `finally`, no flush, exactly what an out-of-memory kill or a pulled plug leaves behind.
_CHILD = textwrap.dedent("""
    import json, os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from test_train import make_world
    from spurnb.train import TrainConfig, train
    splits, task, ad = make_world()
    def kill(run, event):
        if event == "after_step" and run.global_step == int(sys.argv[4]): os.kill(os.getpid(), signal.SIGKILL)
    train(TrainConfig(**json.loads(sys.argv[3])), ad, splits, sys.argv[2], task, callbacks=[kill], progress=False)
""")


def test_resume_after_a_real_kill(world, tmp_path):
    "Kill a training process with SIGKILL mid-epoch, resume in another process: the metrics and best weights equal an uninterrupted run's."
    splits, task, ad = world
    cfg = replace(QUICK, method="spurnb", sampler="balanced", epochs=3, ckpt_steps=2)
    ref = train(cfg, ad, splits, tmp_path / "ref", task, progress=False)
    r = subprocess.run([sys.executable, "-c", _CHILD, str(Path(__file__).parent), str(tmp_path / "kill"), json.dumps(vars(cfg)), "9"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == -9, f"the child was not killed (exit {r.returncode}):\n{r.stderr[-2000:]}"
    d = next((tmp_path / "kill").iterdir())
    assert not (d / "final.json").exists()                     # it really stopped mid-run (step 9 of 15, inside epoch 2)
    assert torch.load(d / "last.pt", weights_only=True)["global_step"] == 8
    assert_same_run(train(cfg, ad, splits, tmp_path / "kill", task, resume=True, progress=False), ref)


def test_command_on_a_small_benchmark(tmp_path, capsys):
    r = run_methods("zeroshot,erm", model="tiny-rn", pretrained=None, out=tmp_path, progress=False, epochs=1,
                    data_kw=dict(n_train=160, n_val=64, n_test=64, cache=False))
    t = r["table"]
    assert list(t.method) == ["zeroshot", "erm"] and {"worst_group", "average", "adjusted_average"} <= set(t.columns)
    assert (tmp_path / "benchmark" / "results.csv").exists() and all(Path(f).exists() for f in r["figures"])
