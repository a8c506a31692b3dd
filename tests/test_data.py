"""Tests of spurnb.data: the GroupDataset contract, the built-in benchmark, and the loaders on fixtures written here.

The fixtures below are written by hand in the upstream formats (Waterbirds' metadata.csv, CelebA's list files, Fashion-MNIST's
IDX headers) and share no code with the library's own fixture writers, so a format mistake in both places would not cancel out.
"""
import gzip, struct, warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import spurnb.data as D
import spurnb.benchmark as B

SMALL = dict(n_train=120, n_val=40, n_test=40)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPURNB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def bench():
    return B.make_benchmark(**SMALL, cache=False)


def jpeg(path, size=(16, 12), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


# ---------------------------------------------------------------- the contract, on the benchmark
def test_items_follow_the_contract(bench):
    for split in ("train", "val", "test"):
        ds = bench.splits[split]
        assert ds.y.dtype == ds.a.dtype == ds.g.dtype == torch.long
        assert torch.equal(ds.g, ds.y * ds.n_attrs + ds.a)
        assert ds.group_counts().sum().item() == len(ds) and ds.n_groups == 4 and ds.has_masks
        it = ds[len(ds) - 1]
        assert set(it) == {"image", "y", "a", "g", "idx", "mask"} and it["idx"] == len(ds) - 1
        assert it["image"].shape == (3, 64, 64) and it["image"].dtype == torch.float32 and 0 <= it["image"].min() <= it["image"].max() <= 1
        assert it["mask"].shape == (1, 64, 64) and set(it["mask"].unique().tolist()) <= {0.0, 1.0} and it["mask"].sum() > 0
        assert ds.load_image(0).mode == "RGB" and ds.load_image(0).size == (64, 64)
    assert bench.train.summary().startswith("benchmark/train: 120 images, 2 classes × 2 attrs, groups [")
    assert bench.val.group_counts().tolist() == [10, 10, 10, 10]
    assert bench.train.group_name(2) == "odd digit / land"


def test_corpus_is_balanced_and_captioned(bench):
    c = bench.corpus(n=600, cache=False)
    pairs = {}
    for o, b in zip(c.objects, c.backgrounds): pairs[o, b] = pairs.get((o, b), 0) + 1
    assert len(pairs) == 60 and set(pairs.values()) == {10}
    item = c[5]
    assert set(item) == {"image", "caption", "idx"} and item["caption"] == c.captions[5]
    for cap, o, b in zip(c.captions, c.objects, c.backgrounds):
        assert cap.endswith(f" on {b}") and cap.startswith("a photo of ")
        assert o in cap or "even digit" in cap or "odd digit" in cap
    biased = bench.corpus(n=600, home_bias=1.0, class_caption_p=0.0, cache=False)
    assert {b for o, b in zip(biased.objects, biased.backgrounds) if o == "four"} == {"land"}
    assert not any("digit" in cap for cap in biased.captions)


def test_cache_is_reused_and_parallel_builds_agree(cache):
    with ThreadPoolExecutor(3) as ex:
        bs = list(ex.map(lambda _: B.make_benchmark(**SMALL), range(3)))
    assert len({b.train.fingerprint for b in bs}) == 1
    files = sorted(p.name for p in (cache / "benchmarks").iterdir())
    assert [f for f in files if f.endswith(".npz")] == [bs[0].path.name] and not any(f.endswith(".tmp") for f in files)
    assert bs[0].path.exists() and sorted({p.suffix for p in (cache / "benchmarks").iterdir()}) == [".lock", ".npz"]
    again = B.make_benchmark(**SMALL)
    assert again.train.fingerprint == bs[0].train.fingerprint and again.path == bs[0].path
    c1, c2 = again.corpus(n=60), again.corpus(n=60)
    assert c1.captions == c2.captions and np.array_equal(c1.images, c2.images)


def test_transform_swaps_in_a_pil_pipeline(bench):
    ds = bench.test.subset(range(4))
    ds.transform = lambda im: D.to_tensor(im.resize((32, 32)))
    ds.mask_transform = D.mask_resize_center_crop(32)
    it = ds[1]
    assert it["image"].shape == (3, 32, 32) and it["mask"].shape == (1, 32, 32)


# ---------------------------------------------------------------- Fashion-MNIST reader (IDX format)
def write_idx(path, arr, compress=True):
    arr = np.asarray(arr, dtype=np.uint8)
    raw = b"\x00\x00\x08" + bytes([arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape) + arr.tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f: f.write(raw)
    else: Path(path).write_bytes(raw)


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_idx_fixture(tmp_path, compress):
    rng = np.random.default_rng(0)
    for part, n in (("train", 70), ("t10k", 30)):
        ims = np.zeros((n, 28, 28), np.uint8); ims[:, 6:22, 8:20] = rng.integers(128, 256, (n, 16, 12))
        write_idx(tmp_path / f"{part}-images-idx3-ubyte", ims, compress)
        write_idx(tmp_path / f"{part}-labels-idx1-ubyte", np.arange(n) % 10, compress)
    src = B.OBJECT_SOURCES["fashion-mnist"](tmp_path)
    assert src.images.shape == (100, 28, 28) and src.labels[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    b = B.make_benchmark(source="fashion-mnist", source_dir=tmp_path, n_train=40, n_val=8, n_test=8, cache=False)
    assert b.classnames == ["clothing", "footwear or bag"] and b.train.attr_context_prompts == ["item on land", "item on water"]


def test_fashion_mnist_missing(tmp_path):
    with pytest.raises(D.DataNotFoundError, match="dataset-fashion-mnist"):
        B.OBJECT_SOURCES["fashion-mnist"](tmp_path / "nowhere")


# ---------------------------------------------------------------- Waterbirds
WB_HEADER = "img_id,img_filename,y,split,place,place_filename\n"


def waterbirds(root, rows, masks=False):
    "rows: (y, split, place) triples; images in CUB species folders."
    lines = []
    for k, (y, split, place) in enumerate(rows, 1):
        fn = f"{'001.Black_footed_Albatross' if y else '014.Indigo_Bunting'}/img_{k:04d}.jpg"
        jpeg(root / fn, seed=k)
        if masks:
            m = np.zeros((12, 16), np.uint8); m[2:6, 3:7] = 200
            (root / "segmentations" / fn).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(m).save((root / "segmentations" / fn).with_suffix(".png"))
        lines.append(f"{k},{fn},{y},{split},{place},/o/ocean/{k:08d}.jpg\n")
    (root / "metadata.csv").write_text(WB_HEADER + "".join(lines))
    return root


ALL_GROUPS = [(0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1), (0, 1, 0), (1, 2, 1)]


def test_waterbirds_loads(tmp_path):
    root = waterbirds(tmp_path / "waterbirds_v1.0", ALL_GROUPS, masks=True)
    for r in (root, tmp_path):
        ds = D.load_waterbirds(r, "train")
        assert ds.group_counts().tolist() == [1, 1, 1, 1] and ds.classnames == ["landbird", "waterbird"] and ds.attrnames == ["land", "water"]
    it = ds[2]
    assert it["image"].shape == (3, 12, 16) and it["mask"].shape == (1, 12, 16) and it["mask"].sum() == 16   # 200 ≥ 128 → inside
    assert (it["y"], it["a"], it["g"]) == (1, 0, 2)
    assert ds.summary() == "waterbirds/train: 4 images, 2 classes × 2 attrs, groups [1, 1, 1, 1], with masks"
    assert len(D.load_waterbirds(root, "val")) == 1 and len(D.load_waterbirds(root, "test", verify=True)) == 1


def test_waterbirds_fingerprint_tracks_content(tmp_path):
    root = waterbirds(tmp_path, ALL_GROUPS)
    f0 = D.load_waterbirds(root).fingerprint
    assert D.load_waterbirds(root).fingerprint == f0
    (root / "metadata.csv").write_text((root / "metadata.csv").read_text().replace("jpg,0,0,0,", "jpg,0,0,1,", 1))
    assert D.load_waterbirds(root).fingerprint != f0
    f1 = D.load_waterbirds(root).fingerprint
    jpeg(root / "014.Indigo_Bunting/img_0001.jpg", size=(20, 12), seed=99)
    assert D.load_waterbirds(root).fingerprint != f1


@pytest.mark.parametrize("edit,match", [
    (lambda t: t.replace("img_filename", "image"), r"missing column\(s\) \['img_filename'\]; columns found"),
    (lambda t: t.replace("\n2,014.Indigo_Bunting/img_0002.jpg,0,", "\n2,014.Indigo_Bunting/img_0002.jpg,x,"), r"line 3, column 'y': value 'x'"),
    (lambda t: t.replace(",0,0,1,/o/ocean/00000002", ",0,0,5,/o/ocean/00000002"), r"line 3, column 'place': value '5'"),
    (lambda t: t.replace(",0,0,0,", ",0,7,0,", 1), r"line 2, column 'split': value '7'"),
    (lambda t: t.replace("\n3,", "\n3,../../", 1), r"line 4: image path '../../001"),
    (lambda t: t.replace("\n3,", "\n3,/", 1), r"escapes the dataset root"),
])
def test_waterbirds_bad_metadata(tmp_path, edit, match):
    root = waterbirds(tmp_path, ALL_GROUPS)
    (root / "metadata.csv").write_text(edit((root / "metadata.csv").read_text()))
    with pytest.raises(D.DataError, match=match):
        D.load_waterbirds(root, "train")


def test_waterbirds_missing_and_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="kohpangwei/group_DRO"): D.load_waterbirds(tmp_path)
    root = waterbirds(tmp_path, [(0, 0, 0), (1, 0, 1)])
    with pytest.raises(D.DataError, match=r"no rows with split == 2 \(test\)"): D.load_waterbirds(root, "test")
    with pytest.raises(D.DataError, match="unknown split"): D.load_waterbirds(root, "validation")
    with pytest.warns(UserWarning, match=r"no examples of group\(s\) \['landbird / water', 'waterbird / land'\]"):
        D.load_waterbirds(root, "train")


def test_corrupt_image_raises_at_read_time_with_path_and_line(tmp_path):
    root = waterbirds(tmp_path, ALL_GROUPS)
    bad = root / "001.Black_footed_Albatross/img_0004.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    ds = D.load_waterbirds(root)                           # lazy: loading the index is fine
    ds[0]
    with pytest.raises(D.ImageReadError, match=r"metadata.csv, line 5: cannot read image .*img_0004.jpg"): ds[3]
    with pytest.raises(D.ImageReadError, match="img_0004.jpg"): D.load_waterbirds(root, verify=True)


# ---------------------------------------------------------------- CelebA
def celeba(root, n=8, txt=True, values=(-1, 1)):
    names = D.CELEBA_ATTRS
    ids = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for k, i in enumerate(ids): jpeg(root / "img_align_celeba" / i, (14, 18), k)
    row = lambda k: [values[(k >> (j % 3)) & 1] for j in range(len(names))]     # varies per image and per attribute
    part = [0, 0, 0, 0, 0, 1, 2, 2][:n] + [0] * max(0, n - 8)
    if txt:
        (root / "list_attr_celeba.txt").write_text(f"{n}\n" + " ".join(names) + " \n" + "".join(
            f"{i} " + " ".join(f"{v:2d}" for v in row(k)) + "\n" for k, i in enumerate(ids)))
        (root / "list_eval_partition.txt").write_text("".join(f"{i} {p}\n" for i, p in zip(ids, part)))
    else:
        (root / "list_attr_celeba.csv").write_text("image_id," + ",".join(names) + "\n" + "".join(
            f"{i}," + ",".join(map(str, row(k))) + "\n" for k, i in enumerate(ids)))
        (root / "list_eval_partition.csv").write_text("image_id,partition\n" + "".join(f"{i},{p}\n" for i, p in zip(ids, part)))
    return root


@pytest.mark.parametrize("txt,values", [(True, (-1, 1)), (False, (-1, 1)), (True, (0, 1))])
def test_celeba_formats(tmp_path, txt, values):
    root = celeba(tmp_path / "celeba", txt=txt, values=values)
    ds = D.load_celeba(tmp_path, "train", target="Bald", spurious="Bangs")     # columns 4 and 5 → bits 1 and 2 of the row index
    assert len(ds) == 5 and ds.y.tolist() == [(k >> 1) & 1 for k in range(5)] and ds.a.tolist() == [(k >> 2) & 1 for k in range(5)]
    assert ds.classnames == ["no bald", "bald"] and ds[0]["image"].shape == (3, 18, 14)
    d2 = D.load_celeba(root, "test")
    assert len(d2) == 2 and d2.attrnames == ["female", "male"] and d2.classnames == ["non-blond hair", "blond hair"]


def test_celeba_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="mmlab.ie.cuhk.edu.hk"): D.load_celeba(tmp_path)
    root = celeba(tmp_path)
    with pytest.raises(D.DataError, match=r"no attribute column 'Blonde_Hair'"): D.load_celeba(root, target="Blonde_Hair")
    text = (root / "list_attr_celeba.txt").read_text().splitlines()
    text[4] = text[4][:11] + " 2" + text[4][13:]                                   # first value of image 3 → 2
    (root / "list_attr_celeba.txt").write_text("\n".join(text) + "\n")
    with pytest.raises(D.DataError, match=r"list_attr_celeba.txt, line 5, column '5_o_Clock_Shadow': value '2'"):
        D.load_celeba(root, target="5_o_Clock_Shadow")


# ---------------------------------------------------------------- load_csv
def test_load_csv(tmp_path):
    for k in range(4): jpeg(tmp_path / "im" / f"{k}.png", seed=k)
    (tmp_path / "d.csv").write_text("path,y,a,split\nim/0.png,0,1,train\nim/1.png,1,0,train\nim/2.png,1,1,val\nim/3.png,0,0,train\n")
    ds = D.load_csv(tmp_path / "d.csv", split="train", classnames=["cat", "dog"], attrnames=["indoors", "outdoors"])
    assert ds.y.tolist() == [0, 1, 0] and ds.a.tolist() == [1, 0, 0] and ds.rows == [2, 3, 5] and ds.classnames == ["cat", "dog"]
    with pytest.raises(D.DataError, match=r"d.csv, line 3, column 'y': value '1' is not one of"):
        D.load_csv(tmp_path / "d.csv", classnames=["dog"], attrnames=["x", "y"])      # one declared class: 1 is out of range
    (tmp_path / "e.csv").write_text("path,y,a\n/abs/x.png,0,0\n")
    with pytest.raises(D.DataError, match="escapes the dataset root"): D.load_csv(tmp_path / "e.csv")
    with pytest.raises(D.DataError, match=r"no rows with split == 'test'"): D.load_csv(tmp_path / "d.csv", split="test")


def test_console_script_exits_cleanly(tmp_path):
    import subprocess, sys
    script = tmp_path / "spurnb_benchmark"           # what pip writes for the console_scripts entry
    script.write_text("import sys\nfrom spurnb.benchmark import spurnb_benchmark\nif __name__ == '__main__': sys.exit(spurnb_benchmark())\n")
    args = ["--n_train", "40", "--n_val", "8", "--n_test", "8", "--corpus", "20", "--no_cache"]
    r = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "benchmark/train: 40 images" in r.stdout and "benchmark/corpus: 20 captioned images" in r.stdout
