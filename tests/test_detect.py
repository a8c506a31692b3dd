"""Tests of spurnb.detect: every statistic on hand-made cases, every scorer (the detector on a random-init OWL model),
the bad inputs of the issue, and the proof that a label-free run reads no attribute label (garbage `a` gives the same run).

Small on purpose (a 160-image benchmark, a randomly initialised tiny CLIP): 16_detect.ipynb runs the benchmark-size checks.
"""
import builtins, json, sys, warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import spurnb.benchmark as D
from spurnb.data import DATASETS
import spurnb.detect as T
from spurnb.methods import Task
from spurnb.models import load_clip
from spurnb.train import TrainConfig
from spurnb.experiment import run_methods


# ---------- statistics on hand-made cases ----------
def test_word_stats_by_hand_and_ranks():
    # class 0: word "a" present on the two errors; class 1: "b" present on its only error
    present = np.array([[1, 0], [1, 0], [0, 1], [0, 0], [1, 1], [0, 1], [0, 1], [1, 0], [1, 0], [0, 0]], bool)
    correct = np.array([0, 0, 1, 1, 1, 1, 0, 1, 1, 1], bool); y = np.array([0] * 5 + [1] * 5)
    t = T.word_stats(present, correct, y, ["a", "b"], ["c0", "c1"], min_count=2, n_boot=300).set_index(["cls", "word"])
    r = t.loc[("c0", "a")]
    assert (r.n_with, r.n_without) == (3, 2) and r.acc_with == pytest.approx(1 / 3) and r.acc_without == 1 and r.gap == pytest.approx(-2 / 3)
    r = t.loc[("c1", "b")]                                                     # present on 5,6 (6 wrong); absent on 7,8,9 (right)
    assert r.acc_with == pytest.approx(0.5) and r.acc_without == 1 and r.rank_gap == 1 and r.rank_mi == 1
    assert t.loc[("c0", "a")].rank_gap == 1 and t.loc[("c0", "b")].rank_gap == 2
    assert t.loc[("c0", "a")].gap_hi <= 0
    r = t.loc[("c1", "a")]                                                     # present on 7, 8 (right); absent on 5, 6, 9 (6 wrong)
    assert (r.n_with, r.n_without, r.kept) == (2, 3, True) and r.gap == pytest.approx(1 - 2 / 3) and r.rank_gap == 2


def test_mi_ranking_orders_harmful_words_first():
    # complementary words have equal MI; the harmful one (negative gap) ranks first
    water = np.array([1] * 10 + [0] * 10, bool); land = ~water
    correct = np.r_[np.r_[np.zeros(4), np.ones(6)], np.ones(10)].astype(bool)
    t = T.word_stats(np.c_[land, water], correct, np.zeros(20, int), ["land", "water"], ["c"], min_count=5, n_boot=50).set_index("word")
    assert t.loc["land"].mi == pytest.approx(t.loc["water"].mi)
    assert t.loc["water"].rank_mi == 1 and t.loc["water"].rank_gap == 1


def test_filter_and_bad_word_warnings():
    P = np.c_[np.zeros(12, bool), np.ones(12, bool), np.arange(12) % 2 == 0]
    ok = np.arange(12) % 3 != 0; y = np.r_[np.zeros(8, int), np.ones(4, int)]
    with pytest.warns(UserWarning) as rec:
        t = T.word_stats(P, ok, y, ["sky", "digit", "w"], ["big", "small"], min_count=3, n_boot=20)
    msgs = " ".join(str(m.message) for m in rec)
    assert "in all 12 images: never present: ['sky']; present in every image: ['digit']" in msgs
    assert "class 'small' has 4 images" in msgs and "lower min_count" in msgs
    kept = t[t.kept].set_index(["cls", "word"]).index.tolist()
    assert kept == [("big", "w")]                                               # 4 with, 4 without in 'big'; nothing in 'small'


def test_bootstrap_seed_stability():
    rng = np.random.default_rng(0); n = 200
    P = rng.random((n, 3)) < [0.5, 0.3, 0.6]; ok = ~(P[:, 0] & (rng.random(n) < 0.5))
    tabs = [T.word_stats(P, ok, np.zeros(n, int), ["x", "u", "v"], ["c"], n_boot=500, seed=s).set_index("word") for s in range(3)]
    assert all(t.loc["x"].rank_gap == 1 and t.loc["x"].rank_mi == 1 for t in tabs)
    assert max(abs(t.loc["x"].gap_lo - tabs[0].loc["x"].gap_lo) for t in tabs) < 0.05


# ---------- vocabulary ----------
@pytest.mark.parametrize("text,msg", [("", "holds no words"), ("# only a comment\n\n", "holds no words"),
                                      ("water\nland\nwater\n", "line 3: 'water' repeats line 1"),
                                      ("water\n\x00\x01\n", "line 2"), ("water\n42\n", "line 2: '42' is not a word")])
def test_bad_vocabulary_files(tmp_path, text, msg):
    p = tmp_path / "v.txt"; p.write_text(text)
    with pytest.raises(T.VocabularyError, match=msg.replace("(", r"\(")): T.load_vocabulary(p)


def test_non_utf8_vocabulary(tmp_path):
    p = tmp_path / "v.txt"; p.write_bytes(b"water\n\xff\xfeland\n")
    with pytest.raises(T.VocabularyError, match="line 2: not UTF-8"): T.load_vocabulary(p)


# ---------- scorers ----------
@pytest.fixture(scope="module")
def world():
    torch.manual_seed(0)
    b = D.make_benchmark(n_train=160, n_val=64, n_test=64, cache=False)
    task = Task.from_dataset(b.train, classnames=[list(m) for m in b.params["classes"].values()])
    return b, task, load_clip("tiny-rn")


def test_every_scorer(world):
    b, task, ad = world
    ds = b.val.subset(torch.arange(12))
    for name in sorted(T.SCORERS):
        opts = dict(model=T.random_owl(), batch_size=5) if name == "detector" else {}
        s = T.make_scorer(name, ad, ["land", "water", "sky"], **opts)(ds)
        assert s.scores.shape == s.present.shape == (12, len(s.words)) and s.present.dtype == torch.bool, name
    lab = T.make_scorer("labels", ad, [])(ds)
    assert torch.equal(lab.present.float().argmax(1), ds.a)


def test_detector_threshold_and_boxes(world):
    b, task, ad = world
    ds = b.val.subset(torch.arange(4)); owl = T.random_owl()
    s = T.make_scorer("detector", ad, ["water"], model=owl, threshold=0.1)(ds)
    assert torch.equal(s.present, s.scores >= 0.1) and s.boxes.shape == (4, 1, 4)
    none = T.make_scorer("detector", ad, ["water"], model=owl, threshold=1.01)(ds)
    assert not none.present.any()


def test_detector_without_transformers(world, monkeypatch):
    b, task, ad = world
    monkeypatch.setitem(sys.modules, "transformers", None)                  # `import transformers` now raises ImportError
    with pytest.raises(T.DetectorUnavailable, match=r"pip install spurnb\[detect\]"):
        T.make_scorer("detector", ad, ["water"], model="google/owlv2-base-patch16-ensemble")
    with pytest.raises(T.DetectorUnavailable, match="optional extra"): T.random_owl()


def test_unknown_scorer(world):
    with pytest.raises(KeyError, match="Unknown scorer 'yolo'. Known: clip, detector, labels"): T.make_scorer("yolo", world[2], ["a"])


# ---------- label-free training reads no attribute label ----------
ATTRS = dict(classes=["even digit", "odd digit"], attrs=["land", "water"], attr_prompts=["land", "water"],
             attr_context_prompts=["something on land", "something on water"])


def _garbage(ds, seed):
    g = torch.Generator().manual_seed(seed)
    new = ds.subset(torch.arange(len(ds)))
    new.attrnames = ["x0", "x1", "x2"]; new.a = torch.randint(0, 3, (len(ds),), generator=g); new.g = new.y * 3 + new.a
    new.attr_prompts = new.attr_context_prompts = ["nonsense"] * 3; new._fingerprint = None
    return new


@pytest.fixture(scope="module")
def registered(world):
    b, task, _ = world
    for name, splits in (("lf-true", b.splits), ("lf-garbage", {k: _garbage(v, i) for i, (k, v) in enumerate(b.splits.items())})):
        DATASETS[name] = lambda root=None, s=splits: s       # the garbage's Task (from its train split) carries garbage prompts and counts
    return b


def test_label_free_run_ignores_attribute_labels(registered, tmp_path):
    p = tmp_path / "attributes.json"; p.write_text(json.dumps(ATTRS))
    runs = {}
    for name in ("lf-true", "lf-garbage"):
        torch.manual_seed(0)    # the random-init tiny CLIP is drawn from the global generator
        runs[name] = run_methods("spurnb", name, "-", "tiny-rn", "benchmark", out=tmp_path / name, progress=False, attrs=str(p),
                                 sampler="balanced", epochs=2, batch_size=32)
    a, b = (runs[k]["summaries"][0] for k in ("lf-true", "lf-garbage"))
    assert a["selection"] == "worst-class"
    assert json.dumps(a["history"]) == json.dumps(b["history"])             # every epoch's train/val/test numbers
    wa = torch.load(Path(a["run_dir"]) / "best.pt", weights_only=True)["method"]["adapter"]
    wb = torch.load(Path(b["run_dir"]) / "best.pt", weights_only=True)["method"]["adapter"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert Path(a["run_dir"]).name == Path(b["run_dir"]).name                  # the data fingerprint saw no attribute either
    # the only reader of attribute labels: the report of the true test groups, after selection
    assert "true_worst_group" in runs["lf-true"]["table"]


def test_label_free_bad_inputs(registered, tmp_path):
    p = tmp_path / "other.json"; p.write_text(json.dumps(dict(ATTRS, classes=["landbird", "waterbird"])))
    with pytest.raises(T.DetectionError, match="comes from another dataset"):
        run_methods("spurnb", "lf-true", "-", "tiny-rn", None, out=tmp_path / "o", progress=False, attrs=str(p), epochs=1)
    assert not (tmp_path / "o").exists()                                       # nothing written half
    q = tmp_path / "a.json"; q.write_text(json.dumps(ATTRS))
    with pytest.raises(ValueError, match="--selection worst-group cannot be used"):
        run_methods("spurnb", "lf-true", "-", "tiny-rn", None, out=tmp_path / "o", progress=False, attrs=str(q), selection="worst-group", epochs=1)


# ---------- a decision that can fail, and its bad inputs (issue #22) ----------
@pytest.fixture(scope="module")
def shipped():
    return load_clip("tiny-rn", pretrained="benchmark")          # the default benchmark's tiny CLIP: it reads land, water, sky, snow, ...


def test_errors_are_spurnb_errors():
    from spurnb.core import SpurnbError
    for e in (T.DetectionError, T.VocabularyError, T.DetectorUnavailable): assert issubclass(e, SpurnbError), e


@pytest.mark.parametrize("fdr", [0, 1, -0.5, 2.0, float("nan"), "0.05", None])
def test_fdr_outside_0_1(world, fdr, tmp_path):
    b, task, ad = world
    with pytest.raises(T.DetectionError, match="strictly between 0 and 1"): T.detect(b.val, ad, task, ["land", "water"], fdr=fdr)
    with pytest.raises(T.DetectionError, match="strictly between 0 and 1"): T.spurnb_detect(fdr=fdr, out=str(tmp_path / "o"), quiet=True)
    assert not (tmp_path / "o").exists()


def test_one_word_vocabulary(world, tmp_path):
    b, task, ad = world
    with pytest.raises(T.VocabularyError, match="holds one word, 'water'.*word's opposite"): T.detect(b.val, ad, task, ["water"])
    v = tmp_path / "one.txt"; v.write_text("water\n")
    with pytest.raises(T.VocabularyError, match=f"{v}.*holds one word"): T.spurnb_detect(vocab=str(v), out=str(tmp_path / "o"), quiet=True)
    assert not (tmp_path / "o").exists()


def test_every_word_ungrounded(world, shipped, tmp_path):
    b, task, _ = world
    words = ["smooth", "rough", "indoors", "purple"]              # never in the tiny CLIP's captions
    with pytest.raises(T.DetectionError, match="every word of the vocabulary .* is ungrounded.*'smooth': its prompt is not farther"):
        T.detect(b.val, shipped, task, words)
    v = tmp_path / "v.txt"; v.write_text("\n".join(words))
    with pytest.raises(T.DetectionError, match=f"{v}.*ungrounded"): T.spurnb_detect(vocab=str(v), out=str(tmp_path / "o"), quiet=True, n_boot=10)
    assert not (tmp_path / "o").exists()


def test_ungrounded_words_are_listed_not_tested(world, shipped):
    b, task, _ = world
    d = T.detect(b.val, shipped, task, ["land", "water", "smooth", "kitchen"], min_count=2, n_boot=20)
    t = d.table.drop_duplicates("word").set_index("word")
    assert t.loc["land"].grounded and t.loc["water"].grounded
    for w in ("smooth", "kitchen"):
        assert not t.loc[w].grounded and not d.table[d.table.word == w].tested.any() and t.loc[w].note.startswith("ungrounded: its prompt")
    assert "ungrounded (2 words, left out): smooth" in T.show_ranked(d.table)


def test_attrs_detect_that_finds_nothing_writes_nothing(registered, tmp_path):
    # 32 images per class and a handful of zero-shot errors: no word passes at the default level
    with pytest.raises(T.DetectionError, match="no shortcut found: no spurious attribute found for class 'even digit'.*Nothing was written. Try a larger vocabulary"):
        run_methods("spurnb", "lf-true", "-", "tiny-rn", "benchmark", out=tmp_path / "o", progress=False, attrs="detect", epochs=1)
    assert not (tmp_path / "o").exists()


def test_attribute_file_ungrounded_for_this_model(registered, shipped, tmp_path):
    p = tmp_path / "attributes.json"
    p.write_text(json.dumps(dict(ATTRS, attrs=["indoors", "purple"], attr_prompts=["indoors", "purple"])))
    with pytest.raises(T.DetectionError, match=f"{p}: every attribute word \\['indoors', 'purple'\\] is ungrounded.*Detect again with this model"):
        T.label_free_splits(registered.splits, Task.from_dataset(registered.train), shipped, str(p))
    with pytest.raises(T.DetectionError, match="is ungrounded for the model now loaded"):
        run_methods("spurnb", "lf-true", "-", "tiny-rn", "benchmark", out=tmp_path / "o", progress=False, attrs=str(p), epochs=1)
    assert not (tmp_path / "o").exists()


def test_single_attribute_gets_its_complement():
    # one class hurt by "water"; "land" (present exactly where water is absent) becomes the second value, named as the complement
    rng = np.random.default_rng(0); n = 200
    water = np.arange(n) % 2 == 0; y = (np.arange(n) // 2) % 2
    ok = ~(water & (y == 1) & (rng.random(n) < 0.6))
    P = torch.as_tensor(np.c_[water, ~water, rng.random(n) < 0.5])
    s = T.Scores(["water", "land", "noise"], P.float(), P)
    table = T.word_stats(P.numpy(), ok, y, s.words, ["c0", "c1"], n_boot=50).assign(cluster=lambda t: t.word)
    det = T.Detection(table, s, torch.as_tensor(ok), dict(fdr=0.05, min_agreement=0.9))
    with pytest.warns(UserWarning, match="no spurious attribute found for class 'c0'.*contributes no attribute"): a = T.detected_attributes(det)
    assert a["attrs"] == ["water", "land"] and a["complement"] == {"land": "water"}
    assert det.verdict()["c0"].startswith("no spurious attribute found for class 'c0'")
