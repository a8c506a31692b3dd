"Tests of spurnb.models (adapter, tiny configs, prompts, policies) and spurnb.cache; no network, tiny models only."
import os, time
import pytest
import torch
import torch.nn.functional as F
from spurnb.models import (TINY_CONFIGS, POLICIES, TEMPLATES, SHORT_TEMPLATES, WeightsUnavailableError, load_clip,
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


def test_policies(adapter):
    for pol in POLICIES:
        names = {n for n, _ in apply_policy(adapter, pol, n_classes=2)}
        model_names = {n for n, p in adapter.model.named_parameters() if p.requires_grad}
        assert model_names == {n for n in names if not n.startswith("probe.")}
        assert "logit_scale" not in names
    head = "visual.attnpool" if adapter.family == "resnet" else "visual.proj"
    names = {n for n, _ in apply_policy(adapter, "projection")}
    assert names == {n for n, _ in adapter.model.named_parameters() if n == head or n.startswith(head + ".")} | {"text_projection"}
    assert {n for n, _ in apply_policy(adapter, "zeroshot")} == set()
    assert {n for n, _ in apply_policy(adapter, "linear-probe", n_classes=2)} == {"probe.weight", "probe.bias"}
    extra = {n for n, _ in apply_policy(adapter, "projection+text-embeddings")} - names
    assert extra == {"token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias"}
    with pytest.raises(KeyError, match="Known"): apply_policy(adapter, "nope")


def test_frozen_modules_stay_in_eval(adapter):
    apply_policy(adapter, "projection")
    adapter.train()
    frozen_bn = [m for m in adapter.model.visual.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(not m.training for m in frozen_bn)
    adapter.eval()
