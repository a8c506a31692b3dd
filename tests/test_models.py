"""Tests of spurnb.models and spurnb.pretrain across both tiny CLIPs; no network, tiny models only.

The adapter against open_clip, attention pooling, checkpoints, prompt truncation and the feature cache are checked in
nbs/05_models.ipynb and nbs/08_cache.ipynb; what stays here needs a temporary cache or crosses both architectures.
"""
import numpy as np
import pytest
import torch
from spurnb.models import TINY_CONFIGS, load_clip, apply_policy

ARCHS = list(TINY_CONFIGS)


@pytest.fixture(scope="module", params=ARCHS)
def adapter(request):
    torch.manual_seed(0)
    return load_clip(request.param)


def test_gradcam_layer_and_reshape(adapter):
    acts = {}
    h = adapter.gradcam_layer.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    with torch.no_grad(): adapter.encode_image(torch.randn(2, 3, adapter.image_size, adapter.image_size))
    h.remove()
    maps = acts["a"] if adapter.reshape_transform is None else adapter.reshape_transform(acts["a"])
    assert maps.ndim == 4 and maps.shape[0] == 2


def test_frozen_modules_stay_in_eval(adapter):
    apply_policy(adapter, "projection")
    adapter.train()
    frozen_bn = [m for m in adapter.model.visual.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(not m.training for m in frozen_bn)
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
