"Tests of spurnb.attribution: every method on both tiny CLIP families, targets, the report. The scores, the planted-object check and the model-randomisation check live in nbs/11_attribution.ipynb."
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from spurnb.attribution import (ATTRIBUTIONS, ZeroShotHead, attribute, attribution_maps, attribution_report,
                                sample_per_group)
from spurnb.models import load_clip

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="module", params=["tiny-rn", "tiny-vit"])
def adapter(request):
    torch.manual_seed(0)   # random initialisation, the same every run
    return load_clip(request.param)


TEXT = F.normalize(torch.randn(2, 64, generator=torch.Generator().manual_seed(1)), dim=-1)


def images(adapter, n=2, seed=2):
    "Noise images at the adapter's input size."
    return torch.randn(n, 3, adapter.image_size, adapter.image_size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", sorted(ATTRIBUTIONS))
def test_every_method_gives_input_sized_maps(adapter, method):
    X, S = images(adapter), adapter.image_size
    a = attribute(adapter, X, TEXT, method=method, **({"relu": False} if method == "gradcam" else {}))
    assert a.shape == (2, S, S) and torch.isfinite(a).all() and a.abs().sum() > 0
    assert not adapter.model.training


def test_targets_and_text_targets(adapter):
    X, S = images(adapter), adapter.image_size
    a0, a1 = attribute(adapter, X, TEXT, 0, relu=False), attribute(adapter, X, TEXT, [1, 1], relu=False)
    assert not torch.allclose(a0, a1)
    assert attribute(adapter, X, None, "water background", method="integrated_gradients", n_steps=4).shape == (2, S, S)
    with pytest.raises(ValueError, match="3 entries for 2 images"): attribute(adapter, X, TEXT, [0, 1, 0])
    if adapter.family == "resnet":   # another layer than the adapter's: layer3 has stride 16 (nearest upsampling keeps the blocks)
        a = attribute(adapter, X, TEXT, 0, relu=False, upsample="nearest", layer=adapter.model.visual.layer3)
        assert torch.equal(a[:, ::16, ::16].repeat_interleave(16, 1).repeat_interleave(16, 2), a)
    with pytest.raises(KeyError, match="Known: gradcam"): attribute(adapter, X, TEXT, method="lime")


class _TinyGroups(torch.utils.data.Dataset):
    "Four groups of squares on noise, with masks: the GroupDataset interface attribution uses."
    classnames, attrnames, n_groups, has_masks = ["a", "b"], ["x", "y"], 4, True
    def __init__(self, n=12):
        self.g = torch.arange(n) % 4; self.y = self.g // 2
    def __len__(self): return len(self.g)
    def group_name(self, g): return f"{self.classnames[g // 2]} / {self.attrnames[g % 2]}"
    def __getitem__(self, i):
        gen = torch.Generator().manual_seed(i); mask = torch.zeros(1, 64, 64); mask[:, 16:40, 16:40] = 1
        return dict(image=torch.rand(3, 64, 64, generator=gen), mask=mask, y=int(self.y[i]), a=int(self.g[i] % 2), g=int(self.g[i]), idx=i)


def test_report_writes_table_and_figures(tmp_path):
    torch.manual_seed(0); ds, ad = _TinyGroups(), load_clip("tiny-vit")
    idx = sample_per_group(ds, 2)
    assert ds.g[idx].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    rep = attribution_report(ad, ds, tmp_path, head=TEXT, name="m", n_per_group=2, n_boot=20, methods=("gradcam", "occlusion"))
    texts = attribution_maps(ad, ds, TEXT, idx[:2], target=lambda b: [f"{ds.attrnames[a]} background" for a in b["a"]])
    assert texts["maps"]["gradcam"].shape == (2, 64, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attribution_gallery.png", "attribution_share.csv", "attribution_share.png"]
    assert pd.read_csv(tmp_path / "attribution_share.csv").shape == rep.shape and len(rep) == 8
    assert rep.chance.tolist() == pytest.approx([24 * 24 / 64 / 64] * 8)
    assert ((rep.acc >= 0) & (rep.acc <= 1)).all() and set(rep.model) == {"m"}


def test_report_takes_methods():
    ds, ad = _TinyGroups(4), load_clip("tiny-vit")   # the stand-in dataset is 64 px, the ViT's input size
    method = SimpleNamespace(adapter=ad, image_classifier=lambda: ZeroShotHead(ad, TEXT))
    rep = attribution_report({"zs": method, "pair": (ad, TEXT)}, ds, n_per_group=1, n_boot=5, methods=("integrated_gradients",))
    assert list(rep.model.unique()) == ["zs", "pair"] and rep.share.tolist()[:4] == pytest.approx(rep.share.tolist()[4:])
    with pytest.raises(TypeError, match="head= as well"): attribution_report(ad, ds)
