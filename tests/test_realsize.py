"""The real-size path end to end (issue 24): a generated Waterbirds-format folder of photograph-sized JPEGs through
`spurnb_train` with real architectures at 224 px (RN50 and ViT-B/32, randomly initialised: no weights can be downloaded
here), policy projection+text-embeddings, one epoch: the trunk cache built by decoding workers, training, model selection,
the attribution report and the run files. And bf16 against fp32 on the real towers.

Slow (minutes on 2 cores), so `make pytest` skips it and `make test-realsize` (part of `make test`, hence CI) runs it with
SPURNB_REALSIZE=1. It runs the command in a child process, as a user does, with the default number of decoding workers
(the cores) and a fresh cache, so the build is really measured.
"""
import json, os, subprocess, sys, time
from pathlib import Path

import pytest
import torch

from spurnb.data import write_waterbirds_like
from spurnb.methods import Task, make_method
from spurnb.models import load_clip

pytestmark = pytest.mark.skipif(os.environ.get("SPURNB_REALSIZE") != "1",
                                reason="real-size run: `make test-realsize` runs it (SPURNB_REALSIZE=1); minutes on 2 cores")
N_IMAGES = 240
BF16_U = 2.0 ** -8


@pytest.fixture(scope="module")
def wb(tmp_path_factory):
    return write_waterbirds_like(tmp_path_factory.mktemp("realsize") / "waterbirds", n=N_IMAGES)


@pytest.mark.parametrize("model", ["RN50", "ViT-B-32"])
def test_spurnb_train_at_real_size(model, wb, tmp_path):
    out, cache = tmp_path / "runs", tmp_path / "cache"
    cmd = [str(Path(sys.executable).parent / "spurnb_train"), "--dataset", "waterbirds", "--root", str(wb), "--model", model,
           "--pretrained", "", "--policy", "projection+text-embeddings", "--epochs", "1", "--out", str(out)]
    env = dict(os.environ, SPURNB_CACHE=str(cache), SPURNB_PROGRESS="0")
    env.pop("IN_TEST", None)                          # a user's run: decoding workers = the cores
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    secs = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    print(f"{model}: spurnb_train on {N_IMAGES} generated JPEGs at 224 px, 1 epoch, 3 methods + attribution: {secs:.0f} s")
    d = out / "waterbirds"
    runs = sorted(p for p in d.iterdir() if (p / "final.json").exists())
    assert {p.name.split("-")[0] for p in runs} == {"zeroshot", "erm", "spurnb"}
    for run in runs:
        for f in ("config.json", "metrics.csv", "metrics.jsonl", "best.pt", "last.pt", "final.json"): assert (run / f).is_file(), run / f
        conf = json.loads((run / "config.json").read_text())
        assert conf["model"] == model and conf["precision"] == "fp32" and conf["inputs"] == "features"
        final = json.loads((run / "final.json").read_text())
        assert final["best_epoch"] == (0 if run.name.startswith("zeroshot") else 1)   # selection among the trained epochs
        assert 0 <= final["test"]["worst_group_acc"] <= final["test"]["avg_acc"] <= 1
    trained = [p for p in runs if not p.name.startswith("zeroshot")]
    assert all(any(n.startswith("adapter.token_embedding") for n in json.loads((p / "config.json").read_text())["trainable"]) for p in trained)
    calls = sorted((d / "calls").glob("call-*"))                         # each command's figures and reports: its own folder
    assert (d / "results.csv").is_file() and len(calls) == 1 and (calls[0] / "runs.png").is_file()
    att = calls[0] / "attribution" / "attribution_share.csv"
    assert att.is_file() and "share of positive Grad-CAM attribution on the object" in r.stdout
    feats = sorted(cache.glob(f"features/{model}-image-*.npy"))
    assert len(feats) == 3                               # train, val, test: each built once, by the workers
    assert not list(cache.glob("features/.*.tmp"))


TASK = Task(["landbird", "waterbird"], ["land", "water"], ["bird on land", "bird on water"], 2, [10, 2, 2, 10])

@pytest.mark.parametrize("model", ["RN50", "ViT-B-32"])
def test_bf16_close_to_fp32_on_real_towers(model):
    "The tolerances of tests/test_pipeline.py (cosines within 2u, the loss within u; u = 2^-8) on RN50 and ViT-B/32 at 224 px."
    torch.manual_seed(0)
    m = make_method("spurnb", load_clip(model), TASK, policy="projection+text-embeddings"); m.inputs = "images"
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    b = dict(x=x, y=torch.tensor([0, 1]), a=torch.tensor([0, 1]))
    out = {}
    for p in ("fp32", "amp_bf16"):
        m.adapter.set_precision(p)
        with torch.no_grad(): out[p] = m.logits(x), m.loss(b)["total"].mean()
    (l0, t0), (l1, t1) = out["fp32"], out["amp_bf16"]
    cos, rel = float((l1 - l0).abs().max() / m.scale().detach()), float((t1 - t0).abs() / t0.abs())
    print(f"{model}: bf16 vs fp32 logits {cos:.2e} (on the cosine scale), loss {rel:.2e} (relative)")
    assert 0 < cos <= 2 * BF16_U and rel <= BF16_U
