"Tests of spurnb.models (adapter, tiny configs, prompts, policies) and spurnb.cache; no network, tiny models only."
import os, time
import pytest
import torch
import torch.nn.functional as F
from spurnb.models import (TINY_CONFIGS, TEMPLATES, SHORT_TEMPLATES, WeightsUnavailableError, load_clip,
                           encode_prompts, apply_policy, fill_templates)

ARCHS = list(TINY_CONFIGS)


@pytest.fixture(scope="module", params=ARCHS)
def adapter(request):
    torch.manual_seed(0)
    return load_clip(request.param)


def test_tiny_configs_load_and_match_open_clip(adapter):
    x = torch.randn(3, 3, adapter.image_size, adapter.image_size)
    tok = adapter.tokenize(["a photo of a three on water.", "water"])
    with torch.no_grad():
        torch.testing.assert_close(adapter.encode_image(x), adapter.model.encode_image(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(adapter.encode_text(tok), adapter.model.encode_text(tok), atol=1e-5, rtol=1e-5)
    assert adapter.family in ("resnet", "vit")
    assert adapter.encode_image(x).shape == (3, adapter.embed_dim)


def test_attention_pool_equals_open_clip_in_value_and_gradient():
    "The ResNet head's cheap single-query form is open_clip's AttentionPool2d: same outputs, same parameter gradients."
    from spurnb.models import attention_pool
    torch.manual_seed(0)
    pool = load_clip("tiny-rn").model.visual.attnpool.double()
    side = int(round((pool.positional_embedding.shape[0] - 1) ** 0.5))
    f = 3 * torch.randn(5, pool.k_proj.in_features, side, side, dtype=torch.float64)
    ref, ours = pool(f), attention_pool(pool, f)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-10)
    params = list(pool.parameters())
    for a, b in zip(torch.autograd.grad(ref.pow(2).sum(), params), torch.autograd.grad(ours.pow(2).sum(), params)):
        torch.testing.assert_close(b, a, atol=1e-10, rtol=1e-10)


def test_gradcam_layer_and_reshape(adapter):
    acts = {}
    h = adapter.gradcam_layer.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    with torch.no_grad(): adapter.encode_image(torch.randn(2, 3, adapter.image_size, adapter.image_size))
    h.remove()
    maps = acts["a"] if adapter.reshape_transform is None else adapter.reshape_transform(acts["a"])
    assert maps.ndim == 4 and maps.shape[0] == 2


def test_unfetchable_tag_fails_fast_and_clearly(monkeypatch):
    monkeypatch.setenv("SPURNB_OFFLINE", "1")
    t0 = time.time()
    with pytest.raises(WeightsUnavailableError) as e: load_clip("RN50", pretrained="openai")
    assert time.time() - t0 < 10
    msg = str(e.value)
    assert "'RN50'" in msg and "'openai'" in msg and "checkpoint=" in msg
    with pytest.raises(ValueError, match="Known tags"): load_clip("RN50", pretrained="no-such-tag")
    with pytest.raises(FileNotFoundError, match="nope.pt"): load_clip("tiny-rn", checkpoint="/nonexistent/nope.pt")


def test_checkpoint_roundtrip(tmp_path, adapter):
    from safetensors.torch import save_file
    save_file(adapter.model.state_dict(), tmp_path / "w.safetensors")
    torch.save(adapter.model.state_dict(), tmp_path / "w.pt")
    for f in ("w.safetensors", "w.pt"):
        assert load_clip(adapter.name, checkpoint=tmp_path / f).fingerprint == adapter.fingerprint


def test_truncation_is_exact(adapter):
    names = ["three", "eight", "land", "water"]
    with torch.no_grad():
        full = encode_prompts(adapter, names, TEMPLATES, normalize=False, truncate=False)
        cut = encode_prompts(adapter, names, TEMPLATES, normalize=False)
    assert (full - cut).abs().max() <= 1e-5
    e, m = encode_prompts(adapter, names, SHORT_TEMPLATES, with_means=True)
    assert e.shape == (len(SHORT_TEMPLATES), 4, adapter.embed_dim) and m.shape == (4, adapter.embed_dim)
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(e.shape[:2]))


def test_frozen_modules_stay_in_eval(adapter):
    apply_policy(adapter, "projection")
    adapter.train()
    frozen_bn = [m for m in adapter.model.visual.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(not m.training for m in frozen_bn)
    adapter.eval()


# --- the feature cache ---------------------------------------------------------------------------
import warnings
import numpy as np
from spurnb.cache import cached_image_features, cached_text_features, _VERIFIED
from spurnb.data import GroupDataset


def _dataset(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return GroupDataset(rng.integers(0, 2, n), rng.integers(0, 2, n), ["even digit", "odd digit"], ["land", "water"],
                        images=rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8), name="random")


def test_cache_hit_miss_invalidation(tmp_path, adapter):
    ds = _dataset()
    f = cached_image_features(adapter, ds, root=tmp_path, progress=False)
    assert f.dtype == torch.float16 and f.shape[0] == len(ds)
    n = lambda: len(list(tmp_path.glob("*-image-*.npy")))
    orig = adapter.fam.trunk
    adapter.fam.trunk = lambda v, x: (_ for _ in ()).throw(AssertionError("trunk ran on a cache hit"))
    try: assert torch.equal(cached_image_features(adapter, ds, root=tmp_path, progress=False), f)
    finally: adapter.fam.trunk = orig
    cached_image_features(adapter, _dataset(seed=1), root=tmp_path, progress=False)
    assert n() == 2
    cached_image_features(adapter, ds, transform=ds.transform, root=tmp_path, progress=False)
    assert n() == 3
    trunk_param = next(p for k, p in adapter.model.visual.named_parameters() if "conv1" in k or "class_embedding" in k)
    with torch.no_grad(): trunk_param.mul_(1.01)
    cached_image_features(adapter, ds, root=tmp_path, progress=False)
    assert n() == 4


def test_cache_corruption_is_rebuilt(tmp_path):
    ad, ds = load_clip("tiny-rn"), _dataset()
    good = cached_image_features(ad, ds, root=tmp_path, progress=False).clone()
    npy = next(tmp_path.glob("*.npy"))
    def flip(p):
        with open(p, "r+b") as f: f.seek(-50, 2); b = f.read(1); f.seek(-1, 1); f.write(bytes([b[0] ^ 0xFF]))
    for damage in (lambda p: os.truncate(p, p.stat().st_size // 2), flip, lambda p: p.with_suffix(".json").unlink()):
        damage(npy); _VERIFIED.clear()
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            again = cached_image_features(ad, ds, root=tmp_path, progress=False)
        assert any("unusable" in str(r.message) for r in rec)
        assert torch.equal(again, good)


def test_cached_equals_uncached(tmp_path, adapter):
    ds = _dataset()
    apply_policy(adapter, "projection"); adapter.train()
    prompts = ["a photo of a even digit.", "a photo of a odd digit."]
    f = cached_image_features(adapter, ds, root=tmp_path, progress=False)
    t = cached_text_features(adapter, prompts, root=tmp_path)
    def logits(img, pooled): return 100 * F.normalize(img, dim=-1) @ F.normalize(adapter.text_head(pooled), dim=-1).T
    cached = logits(adapter.image_head(f.float()), t)
    full = logits(adapter.encode_image(adapter.preprocess_batch(ds.images)), adapter.text_trunk(adapter.tokenize(prompts)))
    assert (cached - full).abs().max() < 0.05
    assert (F.cross_entropy(cached, ds.y) - F.cross_entropy(full, ds.y)).abs() < 1e-3
    adapter.eval()


# --- pretraining -------------------------------------------------------------------------------------
from spurnb.pretrain import CaptionSampler, pretrain_tiny_clip
from spurnb.benchmark import make_benchmark


def test_caption_positives():
    bench = make_benchmark()
    corpus = bench.corpus(n=256)
    s = CaptionSampler(corpus, bench.params["classes"], bench.source.noun)
    idx = np.arange(64)
    texts, specs = s.sample(idx, np.random.default_rng(0))
    pos = s.positives(idx, specs)
    assert pos.diagonal().all()                                  # each caption is true of the image it was drawn for
    for u, (k, v, b) in enumerate(specs):
        for i in idx:
            obj_ok = k == 0 or (k == 1 and v == s.obj[i]) or (k == 2 and v == s.cls[i])
            assert bool(pos[i, u]) == (obj_ok and (b == -1 or b == s.bg[i]))


def test_pretraining_is_cached_and_deterministic(tmp_path, monkeypatch):
    "A second call is a cache hit (no training, one cached file); `force=True` trains again from scratch to the same weights, bit for bit (one machine, one seed)."
    bench = make_benchmark()
    monkeypatch.setenv("SPURNB_CACHE", str(tmp_path))
    small = dict(n_images=128, epochs=1, batch_size=64, progress=False, report=False)
    a = pretrain_tiny_clip("tiny-rn", benchmark=bench, **small)
    import spurnb.pretrain as P
    monkeypatch.setattr(P, "train_tiny_clip", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained on a cache hit")))
    b = pretrain_tiny_clip("tiny-rn", benchmark=bench, **small)
    assert a.fingerprint == b.fingerprint and a.weights == b.weights
    monkeypatch.undo(); monkeypatch.setenv("SPURNB_CACHE", str(tmp_path))
    c = pretrain_tiny_clip("tiny-rn", benchmark=bench, force=True, **small)
    sc = c.model.state_dict()
    for k, v in a.model.state_dict().items(): assert torch.equal(v, sc[k]), k   # same seed, same weights
    assert c.fingerprint == a.fingerprint
    assert len(list((tmp_path / "models").glob("tiny-rn-benchmark-*.pt"))) == 1


def test_warmup_captions_name_only_the_object():
    bench = make_benchmark()
    corpus = bench.corpus(n=256)
    s = CaptionSampler(corpus, bench.params["classes"], bench.source.noun)
    idx = np.arange(64)
    texts, specs = s.sample_objects(idx)
    assert texts[0] == f"a photo of a {corpus.objects[0]}." and (specs[:, 0] == 1).all() and (specs[:, 2] == -1).all()
    pos = s.positives(idx, specs)                                 # true of every image of the same object, on any background
    assert torch.equal(pos, torch.as_tensor(s.obj[idx][:, None] == s.obj[idx][None, :]))


def test_resizing_once_equals_preprocessing_each_image(adapter):
    "`to_input_size` + the batched normalisation give exactly what `preprocess` gives image by image."
    from PIL import Image
    images = make_benchmark().test.images[:8]
    once = adapter.to_input_size(images)
    assert once.dtype == np.uint8 and once.shape == (8, adapter.image_size, adapter.image_size, 3)
    torch.testing.assert_close(adapter.preprocess_batch(once), torch.stack([adapter.preprocess(Image.fromarray(im)) for im in images]),
                               rtol=0, atol=0)
