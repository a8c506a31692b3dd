"""What spurnb's cached, truncated recipe costs against the reference's training loop, side by side on the same work; how that cost grows with the data and the model; and what the feature cache needs on disk and in memory."""

# The benchmark behind nbs/21_speed.ipynb (`make speed`); it is not part of the installed package.
# Run: python benchmarks/speed.py --out nbs/images

from __future__ import annotations
import copy, ctypes, json, math, multiprocessing as mp, os, queue, resource, shutil, tempfile, threading, time
from dataclasses import dataclass, replace
from pathlib import Path
from unittest import mock
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from fastcore.basics import patch
from fastcore.script import call_parse
from spurnb import cache as C
from spurnb.core import save_json, set_seed, show_progress, in_test, cpu_threads, cache_dir, atomic_write
from spurnb.models import load_clip, apply_policy, resolve_templates, TINY_CONFIGS
from spurnb.losses import multimodal_loss, RECIPES
from spurnb.methods import Task, Prompts, make_method
from spurnb.train import Run, Source, TrainConfig, PRESETS, evaluate, load_splits

__all__ = ['ROUND_TRUNK', 'REAL_MODELS', 'TINY_MODELS', 'POLICIES_TIMED', 'DATASET_SIZES', 'SCALE_NS', 'ReferenceLoop',
           'first_steps', 'PeakRSS', 'timed', 'Spec', 'compose', 'measure', 'default_specs', 'in_child', 'trunk_shape',
           'synthetic_split', 'scale_point', 'mmap_epoch', 'feature_shape', 'cache_bytes', 'cache_table',
           'run_benchmark', 'plot_speed', 'write_results', 'spurnb_speed', 'ratios']

def _groups(names): return [[n] if isinstance(n, str) else list(n) for n in names]

class ReferenceLoop:
    "The reference's training step (Yang et al. 2023): every step re-encodes the images through the whole image tower and every prompt through the whole text tower at full context."
    def __init__(self, adapter, task: Task, policy: str = "projection", templates="imagenet", recipe: str = "lc+vc+ls",
                 mode: str = "official", cfg: TrainConfig | None = None, init_scale: float = 1 / 0.07):
        cfg = cfg or TrainConfig(**PRESETS["reference"])
        self.adapter = copy.deepcopy(adapter)                     # ours to change, like a method's copy
        self.params = apply_policy(self.adapter, policy)
        self.adapter.model.eval()
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(init_scale)))
        self.templates, self.weights, self.mode = resolve_templates(templates), RECIPES[recipe], mode
        self.prompts = {}
        for key, names in (("cls", task.classnames), ("attr", task.attr_prompts), ("ctx", task.attr_context_prompts)):
            groups = _groups(names)
            texts = [t.format(m) for t in self.templates for grp in groups for m in grp]       # row t*M + m
            member = torch.tensor([k for k, grp in enumerate(groups) for _ in grp])
            self.prompts[key] = (self.adapter.tokenize(texts), member, len(groups))             # tokens [T*M, context] (no truncation)
        self.opt = torch.optim.SGD([self.log_scale] + [p for _, p in self.params], lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
    def scale(self):
        "τ = exp(log-scale), clamped at 100 as spurnb's methods clamp it."
        return self.log_scale.exp().clamp(max=100.0)
    def n_prompts(self) -> int:
        "Prompts the text tower encodes at every step."
        return sum(len(t) for t, _, _ in self.prompts.values())

@patch
def text_embeddings(self: ReferenceLoop, key: str, n_templates: int | None = None) -> torch.Tensor:
    "Unit embeddings `[T, K, D]` of prompt set `key` ('cls', 'attr', 'ctx'): open_clip's `encode_text` over every prompt at full context (the first `n_templates` only: for timing)."
    tokens, member, K = self.prompts[key]
    T = n_templates or len(self.templates); tokens = tokens[:T * len(member)]                         # rows are template-major
    e = F.normalize(self.adapter.model.encode_text(tokens).float(), dim=-1).view(T, len(member), -1)   # [T, M, D]
    if len(member) == K: return e
    return F.normalize(e.new_zeros(T, K, e.shape[-1]).index_add_(1, member, e), dim=-1)                # [T, K, D]

@patch
def image_embeddings(self: ReferenceLoop, x: torch.Tensor) -> torch.Tensor:
    "Unit image embeddings `[B, D]`: open_clip's `encode_image` (the whole image tower) on preprocessed images `x`."
    return F.normalize(self.adapter.model.encode_image(x).float(), dim=-1)

@patch
def loss(self: ReferenceLoop, x, y, a) -> dict:
    "The per-sample loss terms of a batch (`multimodal_loss`), every embedding computed afresh."
    return multimodal_loss(self.image_embeddings(x), y, a, self.text_embeddings("cls"), self.text_embeddings("attr"),
                           self.text_embeddings("ctx"), self.scale(), weights=self.weights, mode=self.mode)

@patch
def step(self: ReferenceLoop, x, y, a) -> float:
    "One SGD step on a batch; returns the batch loss before the step."
    loss = self.loss(x, y, a)["total"].mean()
    self.opt.zero_grad(set_to_none=True); loss.backward(); self.opt.step()
    return float(loss.detach())

@patch
def trainable(self: ReferenceLoop) -> dict:
    "Trainable parameters by name, named as `Method.trainable` names them (`log_scale`, `adapter.<name>`)."
    return {"log_scale": self.log_scale, **{f"adapter.{n}": p for n, p in self.params}}

def _round_resnet(visual): visual.attnpool.register_forward_pre_hook(lambda m, args: (args[0].half().float(),))

def _round_vit(visual):
    pool = visual._pool
    def _pool(x):
        pooled, tokens = pool(x)
        return pooled.half().float(), tokens
    visual._pool = _pool

ROUND_TRUNK = {"resnet": _round_resnet, "vit": _round_vit}   # model family -> rounds the trunk's output to fp16 inside open_clip's forward

@patch
def round_trunk(self: ReferenceLoop):
    "Round the image trunk's output to fp16 inside open_clip's forward, where spurnb's cache rounds it (the equivalence check's control); returns the loop."
    ROUND_TRUNK[self.adapter.family](self.adapter.model.visual)
    return self

def _spurnb_config(policy: str, recipe: str = "lc+vc+ls", batch_size: int = 128, templates="imagenet") -> TrainConfig:
    "spurnb's run in the reference's setting: `official` mode, the ImageNet templates, the `reference` preset."
    return replace(TrainConfig(**PRESETS["reference"]), method="spurnb", epochs=1, batch_size=batch_size,
                   opts=dict(templates=templates, mode="official", recipe=recipe, policy=policy))

def _flat(params: dict, names) -> torch.Tensor: return torch.cat([params[k].detach().flatten() for k in names])

def first_steps(adapter, splits: dict, task: Task, policy: str = "projection", n_steps: int = 2, batch_size: int = 128,
                round_trunk: bool = True, ref_mode: str = "official", recipe: str = "lc+vc+ls") -> pd.DataFrame:
    "Loss before, and update of, each of the first `n_steps` steps of `spurnb.train.Run` and `ReferenceLoop` on the same batches."
    cfg = _spurnb_config(policy, recipe, batch_size)
    run = Run(cfg, adapter, splits, task=task, progress=False)
    ref = ReferenceLoop(adapter, task, policy, "imagenet", recipe, ref_mode, cfg)     # ref_mode='paper': a negative control
    if round_trunk: ref.round_trunk()
    mine, theirs = dict(run.method.trainable()), ref.trainable()
    if set(mine) != set(theirs): raise AssertionError(f"different trainable sets: {sorted(set(mine) ^ set(theirs))}")
    names, ds, rows = sorted(mine), splits["train"], []
    for s in range(n_steps):
        idx = torch.arange(s * batch_size, (s + 1) * batch_size)
        b = run.sources["train"].batch(idx)
        with torch.no_grad(): loss = float(run.method.objective(run.method.loss(b), b))
        p0, q0 = _flat(mine, names), _flat(theirs, names)
        run.train_step(idx)
        loss_ref = ref.step(adapter.preprocess_batch(ds.images[idx.numpy()]), ds.y[idx], ds.a[idx])
        d, d_ref = _flat(mine, names) - p0, _flat(theirs, names) - q0
        rows.append(dict(step=s + 1, loss=loss, loss_ref=loss_ref, loss_rel_diff=abs(loss - loss_ref) / abs(loss_ref),
                         update_norm=float(d_ref.norm()), update_rel_diff=float((d - d_ref).norm() / d_ref.norm())))
    return pd.DataFrame(rows)

def _trim():
    "Return the C heap's free memory to the system (glibc), so what a measured piece allocates shows as growth, not as reuse of freed memory."
    try: ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError): pass

class PeakRSS:
    "Context manager: the resident set (bytes) at entry (`base`) and its peak while inside (`peak`), sampled every `every` seconds from `/proc/self/statm`."
    def __init__(self, every: float = 0.005): self.every, self.base, self.peak = every, 0, 0
    @staticmethod
    def now() -> int:
        "The process's resident set in bytes."
        with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    def _watch(self):
        while not self._stop.wait(self.every): self.peak = max(self.peak, self.now())
    def __enter__(self):
        _trim(); self.base = self.peak = self.now(); self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True); self._t.start(); return self
    def __exit__(self, *exc):
        self._stop.set(); self._t.join(); self.peak = max(self.peak, self.now())
    @property
    def delta(self) -> int:
        "Peak minus base, in bytes."
        return self.peak - self.base

def timed(f, reps: int = 3, min_total: float = 1.0, max_reps: int = 20) -> tuple[float, int]:
    "(median seconds, resident-set growth in bytes of the first call) of calls of `f`: at least `reps`, more (up to `max_reps`) until they took `min_total` seconds; the first call is a warm-up unless it alone took `min_total`."
    with PeakRSS() as m:                                        # memory from the first call only: the sampler would slow the timed calls
        t0 = time.perf_counter(); f(); first = time.perf_counter() - t0
    ts = [first] if first >= min_total else []                  # a cheap first call pays one-time costs: a warm-up
    while len(ts) < reps or (sum(ts) < min_total and len(ts) < max_reps):
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), m.delta

def _backward_of(out):
    "Backward of a fixed random linear function of the tensors `out` (reaches what a loss of them would reach)."
    g = torch.Generator().manual_seed(0)
    sum((o * torch.randn(o.shape, generator=g)).sum() for o in out).backward()

def _loss_opt(opt, params, B: int, T: int, task: Task, D: int, recipe: str) -> float:
    "Seconds of `multimodal_loss` (official) on leaf embeddings of `B` images and `T` templates, its backward and `opt`'s step over `params`."
    K = len(task.classnames); A = task.n_attrs
    leaf = lambda *s: F.normalize(torch.randn(*s), dim=-1).requires_grad_()
    z, e, s, r = leaf(B, D), leaf(T, K, D), leaf(T, A, D), leaf(T, A, D)
    y, a = torch.arange(B) % K, torch.arange(B) % A
    def go():
        multimodal_loss(z, y, a, e, s, r, torch.tensor(14.3, requires_grad=True), weights=RECIPES[recipe], mode="official")["total"].mean().backward()
        for p in params:
            if p.grad is None: p.grad = torch.zeros_like(p)
        opt.step()
    return timed(go)

def _epoch_sizes(n: int, bs: int) -> list: return [bs] * (n // bs) + ([n % bs] if n % bs else [])

@dataclass
class Spec:
    "One timed configuration."
    model: str                    # open_clip architecture (random init): "tiny-rn", "tiny-vit", "RN50", "ViT-B-32", ...
    policy: str                   # "projection" or "projection+text-embeddings"
    loop: str                     # "reference" (ReferenceLoop) or "spurnb" (spurnb.train.Run)
    n_images: int | None = None   # training images the configuration holds (None: the whole benchmark)
    img_batch: int = 128          # images in a timed image piece
    n_templates: int = 80         # templates in a timed text piece (of 80)
    whole: bool = True            # also time whole steps of 128 images and 80 templates
    epoch: bool = False           # also time one whole training epoch
    reps: int = 3                 # timed repetitions (after a warm-up call)
    min_total: float = 1.0        # repeat a cheap piece until its calls took this many seconds

def _subset(splits: dict, n: int | None) -> dict:
    if not n: return splits
    sub = splits["train"].subset(torch.randperm(len(splits["train"]), generator=torch.Generator().manual_seed(0))[:n])
    return {"train": sub, "val": sub, "test": sub}

def _sizes(splits: dict) -> dict: return {k: len(v) for k, v in splits.items()}

def _pieces_reference(spec: Spec, adapter, splits, task, cfg, recipe) -> dict:
    "The reference loop's pieces (and whole steps/epoch where asked), timed."
    ref, tr, b, n = ReferenceLoop(adapter, task, spec.policy, "imagenet", recipe, "official", cfg), splits["train"], spec.img_batch, spec.n_templates
    x = adapter.preprocess_batch(tr.images[:b])                        # preprocessing is data loading: not timed in either loop
    keys, r = ("cls", "attr", "ctx"), dict(rss_base=PeakRSS.now())
    r["img_s"], r["img_mem"] = timed(lambda: _backward_of([ref.image_embeddings(x)]), spec.reps, spec.min_total)
    r["txt_s"], r["txt_mem"] = timed(lambda: _backward_of([ref.text_embeddings(k, n) for k in keys]), spec.reps, spec.min_total)
    with torch.no_grad():
        r["img_fwd_s"], _ = timed(lambda: ref.image_embeddings(x), spec.reps, spec.min_total)
        r["txt_fwd_s"], _ = timed(lambda: [ref.text_embeddings(k, n) for k in keys], spec.reps, spec.min_total)
    r["loss_s"], r["loss_mem"] = _loss_opt(ref.opt, list(ref.trainable().values()), cfg.batch_size, 80, task, adapter.embed_dim, recipe)
    r["context"], r["n_prompts"] = int(ref.prompts["cls"][0].shape[1]), ref.n_prompts()
    if spec.whole or spec.epoch:
        X = adapter.preprocess_batch(tr.images)                         # every training input, prepared once (not timed)
        if spec.whole:
            i = torch.arange(min(cfg.batch_size, len(tr)))
            r["whole_s"], r["whole_mem"] = timed(lambda: ref.step(X[i], tr.y[i], tr.a[i]), spec.reps, spec.min_total)
        if spec.epoch:
            t0 = time.perf_counter()
            for i in torch.randperm(len(tr), generator=torch.Generator().manual_seed(0)).split(cfg.batch_size): ref.step(X[i], tr.y[i], tr.a[i])
            r["epoch_s"] = time.perf_counter() - t0
    return r

def _pieces_spurnb(spec: Spec, adapter, splits, task, cfg, recipe) -> dict:
    "spurnb's pieces (and whole steps/epoch where asked), timed through `spurnb.train.Run` and its method."
    r, b, n = {}, spec.img_batch, spec.n_templates
    if spec.policy == "projection":                                    # the trunk pass: building the cache (cold) and the bare forward
        with torch.no_grad():
            x = adapter.preprocess_batch(splits["train"].images[:b])
            r["trunk_fwd_s"], _ = timed(lambda: adapter.image_trunk(x), spec.reps, spec.min_total)
        t0 = time.perf_counter()
        for ds in {ds.fingerprint: ds for ds in splits.values()}.values(): C.cached_image_features(adapter, ds, progress=False)
        r["cache_build_s"], r["cache_build_n"] = time.perf_counter() - t0, sum(len(d) for d in {d.fingerprint: d for d in splits.values()}.values())
    if spec.policy == "projection":                                    # the prompts' text cache (one text-trunk pass), cold
        t0 = time.perf_counter(); make_method("spurnb", adapter, task, **cfg.opts); r["text_cache_s"] = time.perf_counter() - t0
    run = Run(cfg, adapter, splits, task=task, progress=False)
    m, src = run.method, run.sources["train"]
    r["rss_base"] = PeakRSS.now()
    x = src.batch(torch.arange(min(b, len(src))))["x"]
    prompts = [m.class_prompts, m.attr, m.ctx] if n == 80 else \
              [Prompts(m.adapter, names, resolve_templates("imagenet")[:n]) for names in (task.classnames, task.attr_prompts, task.attr_context_prompts)]
    r["img_s"], r["img_mem"] = timed(lambda: _backward_of([m.embed_images(x)]), spec.reps, spec.min_total)
    r["txt_s"], r["txt_mem"] = timed(lambda: _backward_of([p.embed() for p in prompts]), spec.reps, spec.min_total)
    r["loss_s"], r["loss_mem"] = _loss_opt(run.opt, run.params, cfg.batch_size, 80, task, adapter.embed_dim, recipe)
    r["eval_s"], _ = timed(lambda: evaluate(m, run.sources["val"], task), 1)
    r["eval_n"], r["n_prompts"] = len(run.sources["val"]), sum(p.T * p.M for p in (m.class_prompts, m.attr, m.ctx))
    r["context"] = int(m.class_prompts.tokens.argmax(-1).max()) + 1   # the longest prompt, as `text_trunk` cuts it (CLIP's end token has the largest id)
    if spec.whole:
        i = torch.arange(min(cfg.batch_size, len(src)))
        r["whole_s"], r["whole_mem"] = timed(lambda: run.train_step(i), spec.reps, spec.min_total)
    if spec.epoch:
        t0 = time.perf_counter()
        for i in torch.randperm(len(src), generator=torch.Generator().manual_seed(0)).split(cfg.batch_size): run.train_step(i)
        r["epoch_s"] = time.perf_counter() - t0
    return r

def compose(r: dict, sizes: dict, batch_size: int = 128, n_templates: int = 80, epochs: int = 300) -> dict:
    "Per-step (at `batch_size` images, `n_templates` templates), per-epoch, evaluation and recipe seconds, and peak memory, from the timed pieces `r` of `measure`."
    b, n, B, T = r["img_batch"], r["n_templates"], batch_size, n_templates
    step = lambda bs: r["img_s"] * bs / b + r["txt_s"] * T / n + r["loss_s"]
    N, n_all, n_eval = sizes["train"], sum(sizes.values()), sizes["val"] + sizes["test"]
    out = dict(step_s=step(B), step_s_measured=r.get("whole_s"), epoch_s_composed=sum(step(bs) for bs in _epoch_sizes(N, B)))
    out["epoch_s"] = r["epoch_s"] if r.get("epoch_s") is not None else out["epoch_s_composed"]
    out["eval_s"] = (n_eval * r["img_fwd_s"] / b + r["txt_fwd_s"] * T / n) if r["loop"] == "reference" else n_eval * r["eval_s"] / r["eval_n"]
    out["recipe_s"] = epochs * (out["epoch_s"] + out["eval_s"])
    out["recipe_train_s"] = out["recipe_s"]                            # the 300 epochs alone
    if r.get("trunk_fwd_s") is not None:
        out["trunk_pass_s"] = n_all * r["trunk_fwd_s"] / b
        out["cache_build_s"] = n_all * r["cache_build_s"] / r["cache_build_n"]
        out["recipe_s"] += out["cache_build_s"] + r.get("text_cache_s", 0.0)
    mem = r["img_mem"] * B / b + r["txt_mem"] * T / n + r["loss_mem"]
    out["peak_rss_mb"] = (r["rss_base"] + (r["whole_mem"] if r.get("whole_mem") is not None else mem)) / 2**20
    out["peak_rss_composed_mb"] = (r["rss_base"] + mem) / 2**20
    out["peak_measured"] = r.get("whole_mem") is not None
    return out

def measure(spec: Spec, splits: dict, task: Task, recipe: str = "lc+vc+ls", batch_size: int = 128) -> dict:
    "Time configuration `spec` on `splits` and return its pieces, `compose`d costs on the full splits' sizes, and the process's peak RSS."
    set_seed(0); adapter = load_clip(spec.model)                       # random init from a fixed seed
    cfg = _spurnb_config(spec.policy, recipe, batch_size)
    pieces = (_pieces_reference if spec.loop == "reference" else _pieces_spurnb)
    r = dict(spec.__dict__, params=sum(p.numel() for p in adapter.model.parameters()), image_size=adapter.image_size)
    r.update(pieces(spec, adapter, _subset(splits, spec.n_images), task, cfg, recipe))
    r.update(compose(r, _sizes(splits), batch_size))
    r["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return r

REAL_MODELS = ("RN50", "ViT-B-32")   # random-init open_clip architectures timed at real size
TINY_MODELS = ("tiny-rn", "tiny-vit")
POLICIES_TIMED = ("projection", "projection+text-embeddings")

def default_specs(quick: bool = False, n_images: int = 128) -> list[Spec]:
    "The configurations `spurnb_speed` times, interleaved reference/spurnb; `quick`: the tiny ResNet CLIP only, small pieces."
    specs = []
    for model in (TINY_MODELS[:1] if quick else TINY_MODELS + REAL_MODELS):
        real = model in REAL_MODELS
        for policy in POLICIES_TIMED:
            text_runs = policy != "projection"                      # the text tower runs at every step in spurnb too
            if quick: specs += [Spec(model, policy, "reference", 256, 16, 2, False, False, 1, 0.0), Spec(model, policy, "spurnb", 256, 128, 2 if text_runs else 80, False, False, 1, 0.0)]
            elif real: specs += [Spec(model, policy, "reference", n_images, 8, 2, False, False, 2),
                                 Spec(model, policy, "spurnb", n_images, 128, 2 if text_runs else 80, not text_runs, False, 2)]
            else: specs += [Spec(model, policy, "reference", None, 128, 80, True, False, 2), Spec(model, policy, "spurnb", None, 128, 80, True, True, 3)]
    return specs

def _child(q, fn, args, threads):
    try:
        torch.set_num_threads(threads); show_progress(False)
        q.put(("ok", fn(*args)))
    except BaseException as e:
        import traceback; q.put(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))

def in_child(fn, *args, threads: int = 1):
    "`fn(*args)` run in a fresh process (forked from a server that imported this module and nothing more) with `threads` torch threads: its memory peak is its own. Its result, or a RuntimeError with its traceback."
    ctx = mp.get_context("forkserver")   # a fork of a clean server: forking this process after torch started its threads can hang the child
    ctx.set_forkserver_preload([__name__])
    q = ctx.Queue(); p = ctx.Process(target=_child, args=(q, fn, args, threads)); p.start()
    while True:
        try: status, res = q.get(timeout=1.0); break
        except queue.Empty:
            if not p.is_alive(): status, res = "error", f"the child process ended with exit code {p.exitcode} before returning a result"; break
    p.join()
    if status != "ok": raise RuntimeError(f"benchmark child failed: {res}")
    return res

def trunk_shape(adapter) -> tuple:
    "Shape of one image's trunk features (what the cache stores per image)."
    with torch.no_grad(): return tuple(adapter.image_trunk(torch.zeros(1, 3, adapter.image_size, adapter.image_size)).shape[1:])

def synthetic_split(n: int, n_classes: int = 2, n_attrs: int = 2, corr: float = 0.95, seed: int = 0, name: str = "synthetic"):
    "A `GroupDataset` of `n` placeholder 1-pixel images with labels (attribute = class with probability `corr`), for feature caches without images."
    from spurnb.data import GroupDataset
    g = np.random.default_rng([seed, n])
    y = g.integers(0, n_classes, n); a = np.where(g.random(n) < corr, y % n_attrs, g.integers(0, n_attrs, n))
    return GroupDataset(y, a, [f"class {k}" for k in range(n_classes)], [f"attr {k}" for k in range(n_attrs)],
                        images=g.integers(0, 256, (n, 1, 1, 3), dtype=np.uint8), name=f"{name}-{n}")

def _cache_file(adapter, ds) -> Path:
    "The `.npy` image-feature cache file of `ds` for `adapter` (found by the dataset name and size its metadata records)."
    for meta in cache_dir("features").glob(f"{adapter.name}-image-*.json"):
        m = json.loads(meta.read_text())
        if m.get("dataset") == ds.name and m["shape"][0] == len(ds): return meta.with_suffix(".npy")
    raise FileNotFoundError(f"no cached features of {ds.name} for {adapter.name} in {cache_dir('features')}")

def _random_trunk(shape, chunk: int = 4096):
    def batches(adapter, dataset, transform, bs, progress):
        g = np.random.default_rng(len(dataset))
        for s in range(0, len(dataset), chunk): yield s, g.standard_normal((min(chunk, len(dataset) - s), *shape), dtype=np.float32).astype(np.float16)
    return batches

def scale_point(model: str, n: int, task: Task, recipe: str = "lc+vc+ls", batch_size: int = 128, mmap: bool = False) -> dict:
    "Cache build, `Run` construction (reading the cache) and one `projection` epoch on `n` synthetic trunk features of `model`, with the peak RSS; `mmap`: also `mmap_epoch` on its file."
    # The trunk is mocked (random features): they go to a cache of their own, never under the real model's key in the user's cache.
    with tempfile.TemporaryDirectory(prefix="spurnb-scale-") as d, mock.patch.dict(os.environ, SPURNB_CACHE=d):
        return _scale_point(model, n, task, recipe, batch_size, mmap)

def _scale_point(model: str, n: int, task: Task, recipe: str, batch_size: int, mmap: bool) -> dict:
    set_seed(0); adapter = load_clip(model); shape = trunk_shape(adapter)
    tr, ev = synthetic_split(n), synthetic_split(256, name="synthetic-eval")
    r = dict(model=model, n=n, feature_shape=list(shape), rss_start_mb=PeakRSS.now() / 2**20)
    with mock.patch.object(C, "_trunk_batches", _random_trunk(shape)):
        t0 = time.perf_counter()
        f = C.cached_image_features(adapter, tr, progress=False); r["cache_build_s"] = time.perf_counter() - t0
        C.cached_image_features(adapter, ev, progress=False)
        r["cache_bytes"] = int(f.numel() * 2); del f
        method = make_method("spurnb", adapter, task, **_spurnb_config("projection", recipe).opts)   # builds the prompts' text cache
        with PeakRSS() as m:                                            # what a run does with the cache: spurnb.train.Source reads it
            t0 = time.perf_counter(); src = Source(tr, method); r["load_s"] = time.perf_counter() - t0
        r["load_rss_mb"] = m.delta / 2**20; del src, method
        run = Run(_spurnb_config("projection", recipe, batch_size), adapter, {"train": tr, "val": ev, "test": ev}, task=task, progress=False)
    t0 = time.perf_counter()
    for i in torch.randperm(n, generator=torch.Generator().manual_seed(0)).split(batch_size): run.train_step(i)
    r["epoch_s"] = time.perf_counter() - t0
    r["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if mmap: r["mmap"] = mmap_epoch(_cache_file(adapter, tr))
    return r

def _drop_pages(path):
    fd = os.open(path, os.O_RDONLY)
    try: os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally: os.close(fd)

def mmap_epoch(path, batch_size: int = 128, seed: int = 0) -> dict:
    "Seconds of one epoch of random batches read from the `.npy` memory map at `path` (float32 copies), cold (pages dropped) and warm."
    arr = np.load(path, mmap_mode="r")
    order = torch.randperm(len(arr), generator=torch.Generator().manual_seed(seed)).split(batch_size)
    def epoch():
        t0 = time.perf_counter()
        for i in order: torch.from_numpy(np.asarray(arr[np.sort(i.numpy())], dtype=np.float32))
        return time.perf_counter() - t0
    _drop_pages(path); cold = epoch(); warm = epoch()
    _drop_pages(path); t0 = time.perf_counter(); np.asarray(np.load(path, mmap_mode="r"), dtype=np.float32); full_cold = time.perf_counter() - t0
    t0 = time.perf_counter(); np.asarray(np.load(path, mmap_mode="r"), dtype=np.float32); full_warm = time.perf_counter() - t0
    return dict(path=str(path), file_bytes=os.path.getsize(path), n=len(arr), cold_epoch_s=cold, warm_epoch_s=warm,
                full_read_cold_s=full_cold, full_read_warm_s=full_warm)

DATASET_SIZES = {"Waterbirds": dict(train=4795, val=1199, test=5794), "CelebA": dict(train=162770, val=19867, test=19962)}

def feature_shape(model: str) -> tuple:
    "Shape of one image's cached trunk features for open_clip architecture `model`, from its configuration."
    import open_clip
    if model in TINY_CONFIGS: from spurnb.models import register_tiny_configs; register_tiny_configs()
    v = open_clip.get_model_config(model)["vision_cfg"]
    S = v["image_size"]
    if isinstance(v["layers"], (list, tuple)): return (v["width"] * 32, S // 32, S // 32)   # ModifiedResNet: layer4 output
    return (v["width"],)                                                                    # ViT: pooled token

def cache_bytes(model: str, n_images: int) -> int:
    "Bytes of the fp16 image-feature cache of `n_images` images for `model` (the `.npy` header aside)."
    return int(np.prod(feature_shape(model))) * 2 * n_images

def cache_table(models=("RN50", "ViT-L-14-336"), datasets=DATASET_SIZES) -> pd.DataFrame:
    "Disk size of the feature cache per dataset and model, in GiB: all splits, and the training split a run reads through the memory map."
    rows = [dict(dataset=d, model=m, images=sum(s.values()), feature_shape=str(feature_shape(m)),
                 cache_gib=cache_bytes(m, sum(s.values())) / 2**30, train_cache_gib=cache_bytes(m, s["train"]) / 2**30)
            for d, s in datasets.items() for m in models]
    return pd.DataFrame(rows)

SCALE_NS = (1_000, 3_000, 10_000, 30_000, 100_000)

def _load() -> list: return [round(x, 2) for x in os.getloadavg()]

def run_benchmark(quick: bool = False, threads: int = 1, scale_model: str = "ViT-B-32", scale_ns=SCALE_NS, n_images: int = 128, progress: bool = True) -> dict:
    "Every configuration (`default_specs`) and scaling point, each in a forked child with `threads` torch threads, in a fresh feature cache; the results as tables."
    from spurnb.core import versions
    t_start, load_before = time.perf_counter(), _load()
    splits, task = load_splits("benchmark")                              # from the user's cache, before switching to a fresh one
    old, tmp = os.environ.get("SPURNB_CACHE"), tempfile.mkdtemp(prefix="spurnb-speed-")   # the models are random-init: nothing else is needed
    os.environ["SPURNB_CACHE"] = tmp                                     # every feature cache is built cold, here
    rows, scale = [], []
    try:
        for k, spec in enumerate(default_specs(quick, n_images)):
            t0 = time.perf_counter(); rows.append(in_child(measure, spec, splits, task, threads=threads))
            if progress: print(f"[{k + 1}] {spec.model} {spec.policy} {spec.loop}: step {rows[-1]['step_s']:.3g} s ({time.perf_counter() - t0:.0f} s)", flush=True)
        for n in (scale_ns[:2] if quick else scale_ns):
            scale.append(in_child(scale_point, scale_model, n, task, "lc+vc+ls", 128, n == max(scale_ns), threads=threads))
            if progress: print(f"[scale] {n}: epoch {scale[-1]['epoch_s']:.3g} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is None: os.environ.pop("SPURNB_CACHE", None)
        else: os.environ["SPURNB_CACHE"] = old
    meta = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), load_before=load_before, load_after=_load(),
                seconds=time.perf_counter() - t_start, threads=threads, cpus=os.cpu_count(), quick=quick,
                sizes=_sizes(splits), versions=versions())
    return dict(meta=meta, table=pd.DataFrame(rows), scaling=pd.DataFrame(scale), cache=cache_table())

def plot_speed(res: dict, path=None):
    "The scaling figure of `run_benchmark`'s results `res` (tables or records); saved to `path` if given."
    import matplotlib.pyplot as plt
    import seaborn as sns
    t, sc, ca = (pd.DataFrame(res[k]) for k in ("table", "scaling", "cache"))
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    t = t.assign(config=t["loop"] + ", " + t["policy"].str.replace("projection+text-embeddings", "proj.+text emb."))
    sns.lineplot(t, x="params", y="epoch_s", hue="config", style="config", markers=True, dashes=False, ax=ax[0])
    for _, r in t.drop_duplicates("model").iterrows(): ax[0].annotate(r["model"], (r["params"], r["epoch_s"]), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax[0].set(xscale="log", yscale="log", xlabel="parameters", ylabel="seconds per epoch (3,000 images)", title="per-epoch time vs model size")
    ax[0].legend(fontsize=7)
    if len(sc):
        ref = t[(t.loop == "reference") & (t.policy == "projection") & (t.model == sc["model"].iloc[0])]
        ax[1].plot(sc["n"], sc["epoch_s"], "o-", label=f"spurnb epoch ({sc['model'].iloc[0]}, measured)")
        if len(ref): ax[1].plot(sc["n"], ref["epoch_s"].iloc[0] * sc["n"] / res["meta"]["sizes"]["train"], "s--", label="reference epoch (composed)")
        ax[1].set(xscale="log", yscale="log", xlabel="training images", ylabel="seconds", title="cost as the data grows")
        m = ax[1].twinx()
        m.plot(sc["n"], sc["maxrss_mb"] / 1024, "^:", color="tab:green", label="spurnb peak RSS (GiB)")
        m.set(ylabel="peak RSS (GiB)"); m.set_ylim(0, None)
        h1, l1 = ax[1].get_legend_handles_labels(); h2, l2 = m.get_legend_handles_labels(); ax[1].legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
    sns.barplot(ca, x="dataset", y="cache_gib", hue="model", ax=ax[2])
    ax[2].set(yscale="log", ylabel="GiB (fp16, all splits)", title="feature cache on disk")
    fig.tight_layout()
    if path is not None: Path(path).parent.mkdir(parents=True, exist_ok=True); fig.savefig(path, dpi=90); plt.close(fig)
    return fig

def write_results(res: dict, out) -> list:
    "Write `speed.csv`, `speed_scaling.csv`, `speed.json` and `speed.png` into `out`; returns their paths."
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    paths = [out / f for f in ("speed.csv", "speed_scaling.csv", "speed.json", "speed.png")]
    for df, p in ((res["table"], paths[0]), (res["scaling"].drop(columns="mmap", errors="ignore"), paths[1])):
        with atomic_write(p, "w") as f: df.to_csv(f, index=False)
    rec = dict(meta=res["meta"], **{k: pd.DataFrame(res[k]).to_dict("records") for k in ("table", "scaling", "cache")})
    save_json(json.loads(json.dumps(rec, default=lambda o: o.item() if hasattr(o, "item") else str(o))), paths[2])
    plot_speed(res, paths[3])
    return paths

@call_parse
def spurnb_speed(out: str = "nbs/images",   # folder for speed.csv, speed_scaling.csv, speed.json and speed.png
                 quick: bool = False,       # the tiny ResNet CLIP and two scaling points only (a smoke run)
                 threads: int = 1,          # torch threads per configuration
                 n_images: int = 128):      # benchmark images the real-size models are timed on
    "Time spurnb's cached, truncated recipe against the reference's training loop and write the results table, the scaling table and the figure."
    show_progress(False)
    res = run_benchmark(quick=quick, threads=threads, n_images=n_images)
    for p in write_results(res, out): print(p)

def ratios(table) -> pd.DataFrame:
    "Per model and policy: reference over spurnb per step, epoch and recipe; spurnb's recipe over one trunk pass (bare, and as the cache's build); the text tower per prompt at full context over truncated; peak RSS of both."
    t = pd.DataFrame(table)
    ref, sp = (t[t.loop == loop].set_index(["model", "policy"]) for loop in ("reference", "spurnb"))
    out = pd.DataFrame(dict(params=sp["params"], step_speedup=ref["step_s"] / sp["step_s"], epoch_speedup=ref["epoch_s"] / sp["epoch_s"],
                            recipe_speedup=ref["recipe_s"] / sp["recipe_s"]))
    first = sp.xs("projection", level="policy").reindex(sp.index.get_level_values("model"))
    out["recipe_over_trunk_pass"] = sp["recipe_s"].values / first["trunk_pass_s"].values
    out["recipe_over_cache_build"] = sp["recipe_s"].values / first["cache_build_s"].values
    per_prompt = lambda d: d["txt_s"] / d["n_templates"]
    text_runs = sp.index.get_level_values("policy") != "projection"
    out["truncation_saving"] = (per_prompt(ref) / per_prompt(sp)).where(text_runs)
    out["peak_rss_reference_mb"], out["peak_rss_spurnb_mb"] = ref["peak_rss_mb"], sp["peak_rss_mb"]
    return out


if __name__ == "__main__": spurnb_speed()
