"""The real-size path in small (issue 24): images decoded by DataLoader workers, mixed precision that is entered, and their
bad inputs. Fast on purpose (tiny CLIPs, 48 generated Waterbirds-format JPEGs); the real architectures at 224 px run in
tests/test_realsize.py (`make test-realsize`).

Workers are used here on purpose (2 processes): this file runs in pytest's one process, not in nbdev_test's pool, where
worker processes hang (which is why `spurnb.models.default_workers()` is 0 under the test runner).
"""
import copy, json
from pathlib import Path

import pytest
import torch

import spurnb.benchmark as B
import spurnb.train as T
from spurnb.cache import cached_image_features
from spurnb.cli import spurnb_train
from spurnb.data import ImageReadError, load_waterbirds, write_waterbirds_like
from spurnb.methods import Task, make_method
from spurnb.models import load_clip, cpu_has_bf16

BF16_U = 2.0 ** -8   # bf16 unit roundoff (8 significant bits)


@pytest.fixture(scope="module")
def wb(tmp_path_factory):
    "A Waterbirds-format folder of 48 generated JPEGs of CUB-like sizes (a few hundred pixels a side)."
    return write_waterbirds_like(tmp_path_factory.mktemp("wb") / "waterbirds", n=48, seed=1)


def _tiny(name="tiny-rn", seed=0):
    torch.manual_seed(seed); return load_clip(name)


def test_cache_bytes_do_not_depend_on_workers(wb, tmp_path):
    ds = load_waterbirds(wb, "train")
    files = {}
    for w in (0, 2):
        ad = _tiny(); ad.workers = w
        root = tmp_path / f"w{w}"
        cached_image_features(ad, ds, batch_size=8, root=root, progress=False)   # several batches: their order matters
        (npy,) = root.glob("*-image-*.npy")
        files[w] = npy
    assert files[0].name == files[2].name                                    # the key does not depend on the workers either
    assert files[0].read_bytes() == files[2].read_bytes()


def test_worker_that_meets_a_corrupt_image(wb, tmp_path):
    "The error names the metadata line, the build stops, and the cache holds nothing (no entry, no temporary file)."
    import shutil
    root = tmp_path / "wb"; shutil.copytree(wb, root)
    ds = load_waterbirds(root, "train"); bad = 13
    ds.paths[bad].write_bytes(ds.paths[bad].read_bytes()[:300])            # a truncated download
    ad = _tiny(); ad.workers = 2
    cache = tmp_path / "cache"
    with pytest.raises(ImageReadError, match=rf"metadata\.csv, line {ds.rows[bad]}: cannot read image .*{ds.paths[bad].name}"):
        cached_image_features(ad, ds, batch_size=4, root=cache, progress=False)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []
    ds.paths[bad].write_bytes((wb / ds.paths[bad].relative_to(root)).read_bytes())   # repaired: the next build works
    assert len(cached_image_features(ad, ds, batch_size=4, root=cache, progress=False)) == len(ds)


def test_negative_workers_refused(wb):
    ad = _tiny(); ad.workers = -1
    with pytest.raises(ValueError, match="workers=-1: the number of image-decoding workers is an integer >= 0"):
        next(ad.input_batches(load_waterbirds(wb, "val"), 4))


TASK = Task(["landbird", "waterbird"], ["land", "water"], ["bird on land", "bird on water"], 2, [10, 2, 2, 10])

@pytest.mark.parametrize("name", ["tiny-rn", "tiny-vit"])
def test_bf16_logits_and_loss_close_to_fp32(name):
    """bf16 autocast against fp32 on the same weights and batch (spurnb, policy projection+text-embeddings).
    Tolerances from measurement (3 seeds × tiny-rn, tiny-vit; RN50 and ViT-B/32 once, tests/test_realsize.py): the largest
    logit difference divided by the logit scale (a difference of cosines) was 2.5e-3, the largest relative difference of the
    loss 2.5e-4. Bounds: cosines within 2 u and the loss within u, u = 2^-8 the bf16 unit roundoff (3x and 15x the largest
    seen). A run that did not enter autocast would differ by 0, which the lower bound catches."""
    for seed in range(3):
        m = make_method("spurnb", _tiny(name, seed), TASK, policy="projection+text-embeddings"); m.inputs = "images"
        x = torch.rand(8, 3, m.adapter.image_size, m.adapter.image_size, generator=torch.Generator().manual_seed(seed))
        b = dict(x=x, y=torch.tensor([0, 1] * 4), a=torch.tensor([0, 0, 1, 1] * 2))
        out = {}
        for p in ("fp32", "amp_bf16"):
            m.adapter.set_precision(p)
            out[p] = m.logits(x).detach(), m.loss(b)
        (l0, t0), (l1, t1) = out["fp32"], out["amp_bf16"]
        assert l1.dtype == t1["total"].dtype == torch.float32                  # the loss terms are computed in fp32
        cos = float((l1 - l0).abs().max()) / float(m.scale().detach())
        rel = abs(float((t1["total"].mean() - t0["total"].mean()).detach())) / abs(float(t0["total"].mean().detach()))
        assert 0 < cos <= 2 * BF16_U and rel <= BF16_U, (name, seed, cos, rel)


def test_autocast_is_entered_in_training_and_evaluation(tmp_path):
    "A run with bf16 autocast: the text transformer's linear layers compute in bf16 in the training step (with gradients) and in evaluation."
    torch.manual_seed(0)
    b = B.make_benchmark(n_train=64, n_val=32, n_test=32, cache=False)
    ad = load_clip("tiny-rn").set_precision("amp_bf16")
    seen = []
    ad.model.transformer.resblocks[0].mlp.c_fc.register_forward_hook(lambda mod, i, o: seen.append((torch.is_grad_enabled(), o.dtype)))
    cfg = T.TrainConfig(method="spurnb", opts=dict(policy="projection+text-embeddings"), optimizer="adam", lr=1e-3, epochs=1, batch_size=32)
    s = T.train(cfg, ad, b.splits, tmp_path, progress=False)
    assert (True, torch.bfloat16) in seen and (False, torch.bfloat16) in seen and not any(d != torch.bfloat16 for _, d in seen)
    conf = json.loads((Path(s["run_dir"]) / "config.json").read_text())
    assert conf["precision"] == "amp_bf16"
    s32 = T.train(cfg, copy.deepcopy(ad).set_precision("fp32"), b.splits, tmp_path, progress=False)
    assert s32["run_dir"] != s["run_dir"]                                     # an fp32 run never resumes a bf16 one


def _cli(capsys, **kw):
    try: spurnb_train(**kw); code = 0
    except SystemExit as e: code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("kw, msg", [
    (dict(workers=-1), "--workers -1: must be an integer >= 0"),
    (dict(precision="fp16"), "--precision fp16: not offered (pure fp16 weights: fine-tuning CLIP in fp16 produces NaNs"),
    (dict(precision="double"), "--precision double: not offered. Choose one of fp32, amp, bf16"),
])
def test_cli_refuses(capsys, tmp_path, kw, msg):
    code, err = _cli(capsys, out=str(tmp_path), quiet=True, **kw)
    assert code == 2 and msg in err and "Traceback" not in err


@pytest.mark.skipif(cpu_has_bf16(), reason="this CPU computes bf16 natively: --precision amp is honoured, nothing to fall back from")
def test_cli_amp_on_a_cpu_without_bf16_says_it_runs_fp32(capsys, tmp_path, monkeypatch):
    torch.manual_seed(0)
    b = B.make_benchmark(n_train=64, n_val=32, n_test=32, cache=False)
    monkeypatch.setitem(T.DATASETS, "benchmark", lambda root=None, **kw: b.splits)
    code, err = _cli(capsys, out=str(tmp_path), pretrained="", method="zeroshot", precision="amp", quiet=True)
    assert code == 0 and "spurnb_train: note: --precision amp: this CPU has no native bf16" in err and "computes in fp32" in err
    (run,) = (tmp_path / "benchmark").glob("zeroshot-*")
    assert json.loads((run / "config.json").read_text())["precision"] == "fp32"


def test_evaluation_of_images_decodes_with_workers(wb):
    "With a trunk that trains (policy full) evaluation reads images: in order through the workers, the same inputs as item by item."
    ds = load_waterbirds(wb, "val")
    ad = _tiny(); ad.workers = 2
    m = make_method("erm", ad, TASK, policy="full")
    src = T.Source(ds, m)
    assert src.inputs == "images"
    got = list(src.batches(batch_size=3))
    assert [int(i) for b in got for i in b["idx"]] == list(range(len(ds)))
    for b in got: assert torch.equal(b["x"], src.batch(b["idx"])["x"]) and torch.equal(b["g"], ds.g[b["idx"]])
    part = list(src.batches(batch_size=3, rows=range(2, 7)))                  # a rank's share under torchrun
    assert torch.equal(torch.cat([b["x"] for b in part]), src.batch(torch.arange(2, 7))["x"])


def test_default_workers_share_the_cores_among_torchrun_processes(monkeypatch):
    # torchrun starts LOCAL_WORLD_SIZE processes on a machine: each decodes with its share of the cores, never 0
    import spurnb.models as M
    monkeypatch.setattr(M, "in_test", lambda: False)
    monkeypatch.setattr(M.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert M.default_workers() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4"); assert M.default_workers() == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16"); assert M.default_workers() == 1
