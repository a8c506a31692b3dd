"""The real-size input pipeline and the text step, measured (issue 24). Not part of the package: it imports spurnb.

    python benchmarks/input_pipeline.py --out nbs/images          # writes input_pipeline.{csv,json,png}

What it measures, on a generated Waterbirds-format folder of photograph-sized JPEGs (`spurnb.data.write_waterbirds_like`;
`--n` images, scaled down from Waterbirds' 11,788 and extrapolated linearly, which holds because every image costs the same
work and nothing in the pipeline grows with the split):

1. decode + preprocess alone (`ClipAdapter.input_batches` with no model work), images/s, with 0, 1 and 2 DataLoader workers;
2. the trunk alone on pre-decoded tensors (RN50 at 224 px, random init), images/s;
3. the cache build end to end (`spurnb.cache.cached_image_features`, a fresh cache), with 0 and with 2 workers, and its
   ratio to the trunk alone (the target: within 1.15x with 2 workers, i.e. decoding hidden behind the trunk);
4. the trunk of ViT-L/14@336 on a few images, for the extrapolation;
5. the `projection+text-embeddings` step at RN50 with the 80 ImageNet templates (loss + backward) with the text trunk in
   one pass (`text_chunk = 0`, as before issue 24) and in checkpointed chunks (`text_chunk` 32, 64 and 80): the first step's
   peak resident memory above what the process held before it (VmHWM reset through /proc/self/clear_refs), the median
   time of five more steps and of the loss's forward pass without gradients, each chunk size in its own child process;
6. (`--precision-only`, added to a previous run's results) RN50's trunk and text side in fp32 and with bf16 autocast.

Ratios are taken within one run of this script, each pair measured back to back; the load average is recorded, since the
machine this was written on is shared. Times are wall-clock seconds on the CPU; nothing here used a GPU.
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from spurnb.cache import cached_image_features
from spurnb.core import atomic_write, cpu_threads, show_progress
from spurnb.data import load_waterbirds, write_waterbirds_like
from spurnb.models import load_clip

SIZES = {"Waterbirds": 11_788, "CelebA": 202_599}
CHUNKS = (0, 32, 64, 80)      # the text step: one pass (no recompute), and checkpointed chunks (each text call of the step encodes 160 prompts: 2 names x 80 templates)


def _load(): return [round(x, 2) for x in os.getloadavg()]


def _timed(f):
    t0 = time.perf_counter(); out = f(); return time.perf_counter() - t0, out


def decode_rate(adapter, ds, workers: int, batch_size: int = 32) -> float:
    "Images/s of decode + resize + normalise alone (the DataLoader of `input_batches`, no model work)."
    def run():
        n = 0
        for x in adapter.input_batches(ds, batch_size, workers=workers): n += len(x)
        return n
    run_s, n = _timed(run)
    return n / run_s


@torch.no_grad()
def trunk_rate(adapter, batches) -> float:
    "Images/s of the image trunk alone on pre-decoded batches (the first batch warms up and is not counted)."
    adapter.image_trunk(batches[0])
    s, _ = _timed(lambda: [adapter.image_trunk(x) for x in batches[1:]])
    return sum(len(x) for x in batches[1:]) / s


def cache_build_seconds(adapter, ds, workers: int, batch_size: int = 32) -> float:
    "Seconds of a cold `cached_image_features` build (a fresh cache folder, removed afterwards)."
    root = Path(tempfile.mkdtemp(prefix="spurnb-bench-cache-"))
    adapter.workers = workers
    try: s, _ = _timed(lambda: cached_image_features(adapter, ds, batch_size=batch_size, root=root, progress=False))
    finally: shutil.rmtree(root, ignore_errors=True); adapter.workers = None
    return s


def precision_rates(n_images: int = 2, threads: int = 2) -> list:
    "RN50's trunk (224 px) and one `projection+text-embeddings` forward of the text side (5 templates) in fp32 and with bf16 autocast: seconds, on this CPU."
    from spurnb.models import cpu_has_bf16, encode_prompts
    cpu_threads(threads); torch.manual_seed(0); ad = load_clip("RN50")
    x = torch.rand(n_images, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    rows = []
    for p in ("fp32", "amp_bf16", "fp32", "amp_bf16"):                      # twice each, interleaved: the second pair is kept
        ad.set_precision(p)
        with torch.no_grad():
            ti, _ = _timed(lambda: ad.image_trunk(x))
            tt, _ = _timed(lambda: encode_prompts(ad, ["landbird", "waterbird", "land", "water", "bird on land", "bird on water"]))
        rows.append(dict(precision=p, images=n_images, trunk_s=ti, text_s=tt, native_bf16=cpu_has_bf16()))
    return rows[2:]


def _vm(key: str) -> int:
    "A VmRSS/VmHWM line of /proc/self/status, in bytes."
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"): return int(line.split()[1]) * 1024
    raise KeyError(key)


def text_step_child(chunk: int, batch: int, threads: int, warmup: bool = True, repeats: int = 5) -> dict:
    """In a fresh process: spurnb steps (policy projection+text-embeddings, 80 templates, RN50). The first step's peak RSS
    above the start (memory: nothing pooled yet); then the median time of `repeats` steps (kernels and allocator warm), and
    the median time of the loss's forward pass without gradients (the text trunk is most of it; a checkpointed step computes
    the text trunk's forward twice, so its time is at least the one-pass step's plus about this)."""
    from spurnb.methods import Task, make_method
    torch.set_num_threads(threads); torch.manual_seed(0)
    task = Task(["landbird", "waterbird"], ["land", "water"], ["bird on land", "bird on water"], 2, [10, 2, 2, 10])
    m = make_method("spurnb", load_clip("RN50"), task, policy="projection+text-embeddings", templates="imagenet")
    m.adapter.text_chunk = chunk
    g = torch.Generator().manual_seed(0)
    b = dict(x=torch.randn(batch, 2048, 7, 7, generator=g), y=torch.arange(batch) % 2, a=(torch.arange(batch) // 2) % 2)
    params = [p for _, p in m.trainable()]
    def step():
        for p in params: p.grad = None
        terms = m.loss(b); m.objective(terms, b).backward()
        return float(terms["total"].mean())
    Path("/proc/self/clear_refs").write_text("5")            # reset VmHWM to the current RSS
    before = _vm("VmRSS")
    first_s, loss = _timed(step)
    peak = (_vm("VmHWM") - before) / 2**20
    grads = torch.cat([p.grad.flatten() for p in params if p.grad is not None])
    times = [_timed(step)[0] for _ in range(repeats if warmup else 0)]
    with torch.no_grad():                                    # the loss's forward alone: all the step's prompts through the text trunk
        fwd = [_timed(lambda: m.loss(b))[0] for _ in range(repeats if warmup else 0)]
    return dict(text_chunk=chunk, n_prompts=m.class_prompts.T * (m.class_prompts.M + m.attr.M + m.ctx.M), batch=batch,
                first_step_s=first_s, step_s=float(np.median(times)) if times else first_s,
                forward_no_grad_s=float(np.median(fwd)) if fwd else None, peak_above_start_mb=peak, rss_before_mb=before / 2**20,
                loss=loss, grad_norm=float(grads.norm()), grad_sum=float(grads.double().sum()), warmup=warmup, repeats=len(times))


def text_timing_child(chunks, batch: int, threads: int, rounds: int = 6) -> dict:
    """In a fresh process: the step times of every chunk size interleaved (round r times each chunk size once, in an order
    that rotates), so that a change of the machine's speed falls on all of them alike; per chunk size the median step time
    and the median of its per-round ratio to the one-pass step."""
    from spurnb.methods import Task, make_method
    torch.set_num_threads(threads); torch.manual_seed(0)
    task = Task(["landbird", "waterbird"], ["land", "water"], ["bird on land", "bird on water"], 2, [10, 2, 2, 10])
    m = make_method("spurnb", load_clip("RN50"), task, policy="projection+text-embeddings", templates="imagenet")
    g = torch.Generator().manual_seed(0)
    b = dict(x=torch.randn(batch, 2048, 7, 7, generator=g), y=torch.arange(batch) % 2, a=(torch.arange(batch) // 2) % 2)
    params = [p for _, p in m.trainable()]
    def step(c):
        m.adapter.text_chunk = c
        for p in params: p.grad = None
        terms = m.loss(b); m.objective(terms, b).backward()
    for c in chunks: step(c)                                  # warm-up: every path once
    times = {c: [] for c in chunks}
    for r in range(rounds):
        order = list(chunks)[r % len(chunks):] + list(chunks)[:r % len(chunks)]
        for c in order: times[c].append(_timed(lambda: step(c))[0])
    with torch.no_grad(): fwd = float(np.median([_timed(lambda: m.loss(b))[0] for _ in range(3)]))
    base = np.array(times[chunks[0]])
    return dict(rounds=rounds, forward_no_grad_s=fwd,
                steps={str(c): dict(step_s=float(np.median(t)), ratio=float(np.median(np.array(t) / base))) for c, t in times.items()})


def _in_child(call: str, what: str) -> dict:
    "The JSON result of `input_pipeline.<call>` run in a fresh Python process (its memory and its threads are its own)."
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import input_pipeline as b; "
            f"print('RESULT', json.dumps(b.{call}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    line = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    if r.returncode or not line: raise RuntimeError(f"{what} child failed:\n{r.stderr[-3000:]}")
    return json.loads(line[0][7:])


def text_timing(chunks, batch: int, threads: int) -> dict:
    "`text_timing_child` in a child process."
    return _in_child(f"text_timing_child({tuple(chunks)!r}, {batch}, {threads})", "text timing")


def text_step(chunk: int, batch: int, threads: int, warmup: bool = True) -> dict:
    "`text_step_child` in a child process (its memory is its own)."
    return _in_child(f"text_step_child({chunk}, {batch}, {threads}, {warmup})", "text step")


def run(n: int = 240, threads: int = 2, vitl_images: int = 4, step_batch: int = 32, folder=None, stages=("pipeline", "text"), warmup=True) -> dict:
    show_progress(False); cpu_threads(threads)
    t_start, load0 = time.perf_counter(), _load()
    tmp = Path(tempfile.mkdtemp(prefix="spurnb-bench-wb-"))
    try:
        if stages == ["timing"]:                                # the interleaved step times alone, added to earlier results
            timing = text_timing(CHUNKS, step_batch, threads)
            return dict(meta=dict(timing_date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), timing_load_before=load0,
                                  timing_load_after=_load(), timing_seconds=time.perf_counter() - t_start), text_timing=timing)
        if "pipeline" not in stages:
            steps = [text_step(c, step_batch, threads, warmup) for c in CHUNKS]
            timing = text_timing(CHUNKS, step_batch, threads)
            return dict(meta=dict(text_date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), text_load_before=load0, text_load_after=_load(),
                                  text_seconds=time.perf_counter() - t_start), text_step=steps, text_timing=timing)
        root = Path(folder) if folder else write_waterbirds_like(tmp / "waterbirds", n=n, masks=False)
        ds = load_waterbirds(root, "train")
        rows = []
        torch.manual_seed(0); rn50 = load_clip("RN50")
        dec = {w: decode_rate(rn50, ds, w) for w in (0, 1, 2)}
        batches = list(rn50.input_batches(ds, 32, workers=0))
        trunk = trunk_rate(rn50, batches); del batches
        build = {w: cache_build_seconds(rn50, ds, w) for w in (0, 2)}
        trunk_s = len(ds) / trunk
        for w in (0, 1, 2): rows.append(dict(what="decode+preprocess", model="RN50 (224 px)", workers=w, images=len(ds), images_per_s=dec[w]))
        rows.append(dict(what="trunk alone", model="RN50", workers=None, images=len(ds), images_per_s=trunk, seconds=trunk_s))
        for w in (0, 2):
            rows.append(dict(what="cache build", model="RN50", workers=w, images=len(ds), images_per_s=len(ds) / build[w],
                             seconds=build[w], over_trunk_alone=build[w] / trunk_s))
        del rn50
        torch.manual_seed(0); vitl = load_clip("ViT-L-14-336")
        x = list(vitl.input_batches(ds.subset(torch.arange(vitl_images)), 2, workers=0))
        vitl_rate = trunk_rate(vitl, [x[0]] + x)                                # warm-up on the first batch, then all
        dec336 = decode_rate(vitl, ds.subset(torch.arange(min(len(ds), 64))), 0)
        rows.append(dict(what="trunk alone", model="ViT-L-14-336", workers=None, images=vitl_images, images_per_s=vitl_rate))
        rows.append(dict(what="decode+preprocess", model="ViT-L-14-336 (336 px)", workers=0, images=min(len(ds), 64), images_per_s=dec336))
        del vitl
        ratio = build[2] / trunk_s
        extra = []
        for dname, N in SIZES.items():
            for model, rate in (("RN50", trunk), ("ViT-L-14-336", vitl_rate)):
                r_ = ratio if model == "RN50" else 1.0
                extra.append(dict(dataset=dname, images=N, model=model, trunk_hours=N / rate / 3600,
                                  cache_build_hours=N / rate * max(r_, 1.0) / 3600,
                                  assumption="cache build = trunk time x the measured RN50 build/trunk ratio" if model == "RN50"
                                  else "cache build = trunk time (decoding hidden: at 336 px the trunk is far slower than decoding)"))
        steps = [text_step(c, step_batch, threads, warmup) for c in CHUNKS] if "text" in stages else None
        timing = text_timing(CHUNKS, step_batch, threads) if "text" in stages else None
        return dict(meta=dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), cpus=os.cpu_count(), threads=threads,
                              torch=torch.__version__, platform=platform.platform(), load_before=load0, load_after=_load(),
                              seconds=time.perf_counter() - t_start, n_generated=n, n_train=len(ds), gpu="not measured (no GPU)"),
                    pipeline=rows, extrapolation=extra, **({"text_step": steps, "text_timing": timing} if steps else {}))
    finally: shutil.rmtree(tmp, ignore_errors=True)


def plot(res: dict, path=None):
    import matplotlib.pyplot as plt
    p, s = pd.DataFrame(res["pipeline"]), pd.DataFrame(res["text_step"])
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
    q = p[p.model.str.startswith("RN50")]
    labels = [f"{w}\n{'' if pd.isna(k) else f'{int(k)} workers'}" for w, k in zip(q.what, q.workers)]
    ax[0].barh(labels, q.images_per_s); ax[0].set_xlabel("images / s (RN50, 224 px)"); ax[0].invert_yaxis()
    ax[0].set_title("decode, trunk and the cache build")
    lab = ["one pass" if c == 0 else f"chunks of {c}" for c in s.text_chunk]
    ax[1].bar(lab, s.peak_above_start_mb); ax[1].set_ylabel("peak RSS above start, MiB")
    for i, t in enumerate(s.step_s): ax[1].text(i, s.peak_above_start_mb.iloc[i], f"{t:.1f} s", ha="center", va="bottom")
    ax[1].set_title(f"text step, RN50, {int(s.n_prompts.iloc[0])} prompts")
    fig.tight_layout()
    if path is not None:
        with atomic_write(path) as f: fig.savefig(f, format="png", dpi=90)
        plt.close(fig)
    return fig


def write(res: dict, out) -> list:
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "input_pipeline.json", "w") as f: json.dump(res, f, indent=2)
    with atomic_write(out / "input_pipeline.csv", "w") as f: pd.DataFrame(res["pipeline"]).to_csv(f, index=False)
    plot(res, out / "input_pipeline.png")
    return [out / f"input_pipeline.{e}" for e in ("json", "csv", "png")]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=240, help="generated images (60%% train); Waterbirds has 11,788")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the decoding workers are separate processes)")
    ap.add_argument("--vitl-images", type=int, default=4, help="images through ViT-L/14@336's trunk")
    ap.add_argument("--step-batch", type=int, default=32, help="images (cached features) in the measured text step")
    ap.add_argument("--folder", default=None, help="an existing Waterbirds-format folder instead of a generated one")
    ap.add_argument("--out", default=None, help="write input_pipeline.{json,csv,png} here (nothing is written without it)")
    ap.add_argument("--precision-only", action="store_true", help="only `precision_rates`, added to the results already in --out")
    ap.add_argument("--stages", default="pipeline,text", help="pipeline (items 1-4), text (item 5), both, or timing (item 5's interleaved step times alone)")
    ap.add_argument("--no-warmup", action="store_true", help="the text step's first step only (no repeated steps, no forward-only timing)")
    a = ap.parse_args()
    if a.precision_only:
        res = json.loads((Path(a.out) / "input_pipeline.json").read_text())
        res["precision"] = precision_rates(threads=a.threads); res["meta"]["precision_load"] = _load()
        with atomic_write(Path(a.out) / "input_pipeline.json", "w") as f: json.dump(res, f, indent=2)
        print(json.dumps(res["precision"], indent=1)); sys.exit(0)
    res = run(a.n, a.threads, a.vitl_images, a.step_batch, a.folder, a.stages.split(","), not a.no_warmup)
    print(json.dumps(res, indent=1))
    if a.out:
        old = Path(a.out) / "input_pipeline.json"
        if old.exists() and a.stages != "pipeline,text":           # one stage: merged into the other stage's results
            prev = json.loads(old.read_text()); res = {**prev, **res, "meta": {**prev.get("meta", {}), **res["meta"]}}
        if "pipeline" in res and "text_step" in res: print("\n".join(map(str, write(res, a.out))))
        else:
            with atomic_write(old, "w") as f: json.dump(res, f, indent=2)
