"One-off edit of nbs/02b_pretrain.ipynb: shipped weights (issue 16)."
import json, uuid
P = 'nbs/02b_pretrain.ipynb'
nb = json.load(open(P))
C = nb['cells']
def src(i): return ''.join(C[i]['source'])
def code(s): return dict(cell_type='code', execution_count=None, metadata={}, outputs=[], source=s.splitlines(True), id=uuid.uuid4().hex[:8])
def md(s): return dict(cell_type='markdown', metadata={}, source=s.splitlines(True), id=uuid.uuid4().hex[:8])
def setsrc(i, s): C[i]['source'] = s.splitlines(True)

assert 'import math, time, warnings' in src(1)
setsrc(1, src(1).replace('import math, time, warnings', 'import hashlib, json, math, platform, time, warnings').replace('import torch\n', 'import torch\nimport spurnb\n', 1).replace('from spurnb.core import cache_dir, file_lock,', 'from spurnb.core import cache_dir, atomic_write, file_lock,'))

i = next(i for i, c in enumerate(C) if src(i).startswith('#| export\ndef pretrain_tiny_clip'))
setsrc(i, '''#| export
def pretrain_tiny_clip(name: str = "tiny-rn", benchmark=None, device="cpu", precision: str = "fp32", force: bool = False,
                       shipped: bool = True, progress: bool = True, report: bool = True, **overrides) -> ClipAdapter:
    "The tiny CLIP `name` pretrained on `benchmark`'s caption corpus (default benchmark if None): the shipped weights, the cache, or trained now."
    if name not in TINY_CONFIGS: raise ValueError(f"pretraining on the benchmark is for the tiny configs {list(TINY_CONFIGS)}, not {name!r}")
    cfg = PretrainConfig(name=name, **overrides)
    bench = benchmark if benchmark is not None else make_benchmark()
    recipe = fingerprint(PRETRAIN_VERSION, asdict(cfg), TINY_CONFIGS[name], bench.fingerprint)   # known before the corpus renders
    if shipped and not force and (w := shipped_weights(name, recipe)): return _load_pretrained(name, *w, device, precision)
    corpus = bench.corpus(n=cfg.n_images, seed=cfg.corpus_seed)
    key = fingerprint(PRETRAIN_VERSION, asdict(cfg), TINY_CONFIGS[name], corpus.images, corpus.captions, corpus.objects, corpus.backgrounds)
    if shipped and not force and (w := shipped_weights(name, key)): return _load_pretrained(name, *w, device, precision)
    path = cache_dir("models") / f"{name}-benchmark-{key}.pt"
    with file_lock(path.with_suffix(".lock")):
        if path.exists() and not force:
            try: return _load_pretrained(name, path, key, device, precision)
            except Exception as e: warnings.warn(f"rebuilding unreadable pretrained model {path} ({type(e).__name__}: {e})")
        set_seed(cfg.seed)
        adapter = load_clip(name)
        sampler = CaptionSampler(corpus, bench.params["classes"], bench.source.noun, mix=cfg.caption_mix, class_p=cfg.class_p)
        t0 = time.perf_counter()
        history = train_tiny_clip(adapter, corpus, sampler, cfg, progress)
        secs = time.perf_counter() - t0
        meta = dict(config=asdict(cfg), key=key, recipe=recipe, seconds=round(secs, 1), threads=torch.get_num_threads(), loss=history,
                    zeroshot=zeroshot_report(adapter, bench) if report else None, corpus=corpus.summary())
        torch_save(adapter.model.state_dict(), path)
        save_json(meta, path.with_suffix(".json"))
    return _load_pretrained(name, path, key, device, precision)

def _load_pretrained(name, path, key, device, precision) -> ClipAdapter:
    ad = load_clip(name, checkpoint=path, device=device, precision=precision)
    ad.pretrain_meta = json.loads(path.with_suffix(".json").read_text())
    ad.weights = f"benchmark:{key}" + (":shipped" if "sha256" in ad.pretrain_meta else "")
    return ad
''')

# the shipped weights: prose + export before pretrain_tiny_clip's section
j = next(i for i, c in enumerate(C) if src(i).startswith('## `pretrain_tiny_clip`'))
new = [
md('''## The shipped weights

Pretraining takes about three minutes on two cores, most of a newcomer's first command. So spurnb ships the result: `spurnb/weights/tiny-rn-benchmark.safetensors` (the state dict in fp16, 6.6 MB) and beside it `tiny-rn-benchmark.json`, the record of how it was made — the `PretrainConfig` and its seed, the two keys below, the loss per epoch, the machine and library versions, the file's SHA-256 and the zero-shot report *measured on the shipped fp16 weights*. `make_shipped_weights` (below) writes both from a model pretrained here.

The weights are used when the request is for exactly what they are: the record's **recipe** (pretraining version, configuration, architecture and the benchmark's fingerprint — machine-independent, known before the corpus renders, so the default benchmark never renders the corpus) or its **key** (the same with the corpus *content*, so another benchmark whose corpus renders to the same pixels shares them) must equal the request's. Before use the file's SHA-256 is checked against the record; a mismatch is an error that says to reinstall, never a silent fallback. The checked weights are converted once to an fp32 checkpoint in the cache, which `load_clip` reads like any other.

Pretraining from scratch stays one call away — `pretrain_tiny_clip("tiny-rn", shipped=False)` (cached like before) — and is tested against the same zero-shot targets below.'''),
code('''#| export
WEIGHTS_DIR = Path(spurnb.__file__).parent / "weights"     # inside the installed package

def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""): h.update(block)
    return h.hexdigest()

def shipped_weights(name: str, *keys: str, weights_dir=None) -> tuple[Path, str] | None:
    "(fp32 checkpoint in the cache, key) of the weights shipped for tiny CLIP `name` if their recipe or key is among `keys`, else None."
    d = Path(weights_dir or WEIGHTS_DIR); rec = d / f"{name}-benchmark.json"
    if not rec.exists(): return None
    meta = json.loads(rec.read_text())
    if not {meta["recipe"], meta["key"]} & set(keys): return None
    src, want = d / meta["file"], meta["sha256"]
    got = _sha256(src) if src.exists() else "missing"
    if got != want: raise RuntimeError(f"the shipped weights {src} fail their checksum (SHA-256 {got}, recorded {want}): "
                                       "reinstall spurnb, or pretrain from scratch with pretrain_tiny_clip(shipped=False)")
    path = cache_dir("models") / f"{name}-benchmark-shipped-{meta['sha256'][:16]}.pt"
    with file_lock(path.with_suffix(".lock")):
        if not path.exists():
            from safetensors.torch import load_file
            save_json(meta, path.with_suffix(".json"))
            torch_save({k: v.float() for k, v in load_file(src).items()}, path)
    return path, meta["key"]'''),
code('''#| export
def make_shipped_weights(adapter: ClipAdapter, bench, weights_dir=None) -> dict:
    "Write `adapter` (pretrained on `bench` by `pretrain_tiny_clip`) as the shipped fp16 weights and their record; returns the record."
    import open_clip
    from safetensors.torch import save
    name, meta = adapter.name, adapter.pretrain_meta
    d = Path(weights_dir or WEIGHTS_DIR); file = d / f"{name}-benchmark.safetensors"
    sd = {k: v.detach().cpu().to(torch.float16).contiguous() for k, v in adapter.model.state_dict().items()}
    with atomic_write(file) as f: f.write(save(sd))
    shipped = load_clip(name); shipped.model.load_state_dict({k: v.float() for k, v in sd.items()})
    rec = dict(file=file.name, sha256=_sha256(file), dtype="float16", pretrain_version=PRETRAIN_VERSION, config=meta["config"],
               recipe=fingerprint(PRETRAIN_VERSION, meta["config"], TINY_CONFIGS[name], bench.fingerprint), key=meta["key"],
               benchmark=bench.fingerprint, seconds=meta["seconds"], threads=meta["threads"], loss=meta["loss"],
               zeroshot=zeroshot_report(shipped, bench), zeroshot_fp32=meta["zeroshot"], corpus=meta.get("corpus"),
               made_with=dict(python=platform.python_version(), torch=torch.__version__, open_clip=open_clip.__version__,
                              numpy=np.__version__, cpu=platform.machine(), date=time.strftime("%Y-%m-%d")),
               remake="make_shipped_weights(pretrain_tiny_clip('%s', shipped=False), make_benchmark())  # nbs/02b_pretrain.ipynb" % name)
    save_json(rec, d / f"{name}-benchmark.json")
    return rec'''),
]
C[j:j] = new
nb['cells'] = C
json.dump(nb, open(P, 'w'), indent=1, ensure_ascii=False)
