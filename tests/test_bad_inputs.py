"""Bad inputs and faults, one test per class, each checking what a careful (or careless) user needs:

1. a clear error: the message names the thing (flag, file, line, column, value) and says what to do;
2. nothing half-written: no partial run directory, no orphan temporary file;
3. a later, correct run works.

The classes are those of issue 17 (what failed) and the ones that already held, so they stay held. `CLASSES` lists them;
`test_every_class_has_a_test` keeps the list and the tests in step. Small on purpose: a 120-image benchmark and a randomly
initialised tiny CLIP (no pretraining), 1-2 epochs.
"""
import contextlib, json, math, os, re, shutil, struct, subprocess, sys, threading, warnings, zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import spurnb.cache as C
import spurnb.core as core
import spurnb.benchmark as B
import spurnb.data as D
import spurnb.train as T
import spurnb.experiment as E
from spurnb.cli import spurnb_train, check_args
from spurnb.core import ArgError, CheckpointError, LockedError, SpurnbError
from spurnb.methods import Task
from spurnb.models import load_clip
from test_data import waterbirds, celeba, jpeg, ALL_GROUPS

CFG = T.TrainConfig(method="erm", optimizer="adam", lr=1e-3, epochs=2, batch_size=32)

# name -> (kind, what the test asserts, test): kind "new" (failed when issue 17 was filed), "held" (answered well already; kept so)
# or "cli" (issue 16's command line, not a bad input); asserts: e = a clear error naming the thing and the fix,
# h = nothing half-written (no new or changed file), l = a later correct run works; kind "i26" (issue 26's cases) also asserts
# w = no wrong result without an error.
CLASSES = {}
def bad_input(name, kind, checks):
    "Register the decorated test as the test of class `name`."
    def reg(f): CLASSES[name] = (kind, checks, f.__name__); return f
    return reg


@contextlib.contextmanager
def no_new_files(d):
    "Assert that the block adds, removes or changes no file under `d` (lock files aside: taking a lock touches them)."
    snap = lambda: {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(d).rglob("*") if p.is_file() and p.suffix != ".lock"}
    before = snap(); yield
    assert snap() == before, f"files changed under {d}"


@pytest.fixture(scope="module")
def world():
    torch.manual_seed(0)
    b = B.make_benchmark(n_train=120, n_val=40, n_test=40, cache=False)
    task = Task.from_dataset(b.train, classnames=[list(m) for m in b.params["classes"].values()])
    return b.splits, task, load_clip("tiny-rn")


@pytest.fixture
def small_cli(world, monkeypatch):
    "The command on the small benchmark: `--dataset benchmark` returns the fixture's splits."
    splits, task, _ = world
    monkeypatch.setitem(T.DATASETS, "benchmark", lambda root=None, **kw: splits)
    def run(capsys, **kw):
        kw = dict(dict(pretrained="", method="erm", epochs=1, quiet=True), **kw)
        try: spurnb_train(**kw); code = 0
        except SystemExit as e: code = e.code
        return code, capsys.readouterr().err
    return run


@pytest.fixture
def no_loading(monkeypatch):
    "Fail if the command loads data before it has checked its options."
    def boom(*a, **k): raise AssertionError("data was loaded before the options were checked")
    monkeypatch.setitem(T.DATASETS, "benchmark", boom)
    monkeypatch.setattr("spurnb.models.load_clip", boom)


def files(d):
    "Every file under `d` (relative), or [] if `d` does not exist."
    return sorted(str(p.relative_to(d)) for p in Path(d).rglob("*") if p.is_file()) if Path(d).exists() else []


def run_dir(out): return next(Path(out).iterdir())


# ================================================================ 1. checkpoints are data, never code
class Stop(Exception): pass


class _Evil:
    def __init__(self, p): self.p = p
    def __reduce__(self): return (os.makedirs, (self.p,))


@bad_input('crafted pickle in last.pt', 'new', 'ehl')
def test_crafted_pickle_is_refused_and_runs_nothing(world, tmp_path):
    splits, task, ad = world
    T.train(CFG, ad, splits, tmp_path, task, progress=False)
    d = run_dir(tmp_path); marker = tmp_path / "code-ran"
    torch.save({"meta": {"config": {}}, "x": _Evil(str(marker))}, d / "last.pt")
    with no_new_files(tmp_path), pytest.raises(CheckpointError, match=r"refused to load checkpoint .*last.pt: it holds .*makedirs.*could run code. delete"):
        T.train(CFG, ad, splits, tmp_path, task, resume=True, progress=False)
    assert not marker.exists()                                              # no code ran
    shutil.rmtree(d)                                                        # the fix the message gives
    assert T.train(CFG, ad, splits, tmp_path, task, resume=True, progress=False)["best_epoch"] >= 1


@bad_input('checkpoint contents restricted to tensors and plain types', 'new', 'eh')
def test_checkpoints_hold_only_plain_types(world, tmp_path):
    splits, task, ad = world
    T.train(CFG, ad, splits, tmp_path, task, progress=False)
    for f in ("last.pt", "best.pt"):
        s = torch.load(run_dir(tmp_path) / f, weights_only=True)           # the strict unpickler reads them
        core.check_plain(s)
    assert isinstance(s["meta"]["versions"]["torch"], str) and type(s["meta"]["versions"]["torch"]) is str
    with pytest.raises(TypeError, match="plain types only"): core.torch_save({"x": np.zeros(2)}, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


# ================================================================ 2. integrity
def csv_data(root, ys, a=None, splits=None):
    for k in range(len(ys)): jpeg(root / "im" / f"{k}.png", seed=k)
    a, splits = a or [k % 2 for k in range(len(ys))], splits or ["train"] * len(ys)
    (root / "d.csv").write_text("path,y,a,split\n" + "".join(f"im/{k}.png,{y},{a[k]},{splits[k]}\n" for k, y in enumerate(ys)))
    return root / "d.csv"


@bad_input('CSV label typo adds a class', 'new', 'ehl')
@pytest.mark.parametrize("typo,why", [("abc", "is not an integer label"), ("1.5", "is not an integer label"),
                                      ("-1", "is not an integer label"), ("", "is empty")])
def test_csv_label_typo(tmp_path, typo, why):
    ys = [0, 1, 0, 1, typo, 0, 1, 1]
    p = csv_data(tmp_path, ys)
    with no_new_files(tmp_path), pytest.raises(D.DataError, match=rf"d.csv, line 6, column 'y': value '{typo}' {why}.*declare the labels"):
        D.load_csv(p, split="train")
    ys[4] = 0; p = csv_data(tmp_path, ys)
    assert D.load_csv(p, split="train").n_classes == 2


@bad_input('CSV text label seen once (a typo of a name)', 'new', 'ehl')
def test_csv_text_label_typo(tmp_path):
    p = csv_data(tmp_path, ["cat", "dog", "cat", "dgo", "dog", "cat"])
    with no_new_files(tmp_path), pytest.raises(D.DataError, match=r"line 5, column 'y': value 'dgo' appears on this line only \(a typo\?\); the other labels are \['cat', 'dog'\]"):
        D.load_csv(p)
    with pytest.raises(D.DataError, match=r"line 5, column 'y': value 'dgo' is not one of"):
        D.load_csv(p, classnames=["cat", "dog"])                            # declared classes: checked against them
    p.write_text(p.read_text().replace("dgo", "dog"))
    assert D.load_csv(p).classnames == ["cat", "dog"]


@bad_input('CSV labels through the command line', 'new', 'eh')
def test_csv_typo_through_the_command(tmp_path, capsys):
    p = csv_data(tmp_path, [0, 1, 0, 1, "abc", 0, 1, 1])
    out = tmp_path / "out"
    try: spurnb_train(dataset="csv", root=str(p), pretrained="", method="erm", epochs=1, out=str(out), quiet=True); code = 0
    except SystemExit as e: code = e.code
    err = capsys.readouterr().err
    assert code == 1 and "line 6, column 'y': value 'abc'" in err and "Traceback" not in err
    assert files(out) == []


@bad_input('duplicate rows in Waterbirds metadata', 'new', 'ehl')
def test_waterbirds_duplicate_rows_warn(tmp_path):
    root = waterbirds(tmp_path, ALL_GROUPS)
    text = (root / "metadata.csv").read_text(); lines = text.splitlines()
    (root / "metadata.csv").write_text(text + lines[1].replace("1,", "9,", 1) + "\n")   # image 1 again, same labels, new id
    with no_new_files(tmp_path), pytest.warns(UserWarning, match=r"1 row\(s\) repeat an earlier row \(first: line 8 repeats line 2"):
        ds = D.load_waterbirds(root, "train")
    assert len(ds) == 4 and len(set(map(str, ds.paths))) == 4


@bad_input('conflicting duplicate rows in Waterbirds metadata', 'new', 'ehl')
def test_waterbirds_conflicting_rows_refused(tmp_path):
    root = waterbirds(tmp_path, ALL_GROUPS)
    text = (root / "metadata.csv").read_text(); first = text.splitlines()[1]
    k, fn, y, rest = first.split(",", 3)
    (root / "metadata.csv").write_text(text + f"99,{fn},{1 - int(y)},{rest}\n")
    with no_new_files(tmp_path), pytest.raises(D.DataError, match=rf"metadata.csv, lines 2 and 8: img_filename '{fn}' is listed twice with different 'y'.*keep one row per image"):
        D.load_waterbirds(root, "train")
    (root / "metadata.csv").write_text(text)
    assert len(D.load_waterbirds(root, "train")) == 4


def flip16(p, at=None):
    "Flip 16 bytes of `p`: at `at`, or in the middle of the largest record of a torch zip file."
    b = bytearray(p.read_bytes())
    if at is None:
        with zipfile.ZipFile(p) as z: info = max(z.infolist(), key=lambda i: i.file_size)
        o = info.header_offset; n, e = struct.unpack("<HH", b[o + 26:o + 30]); at = o + 30 + n + e + info.file_size // 2
    b[at:at + 16] = bytes(x ^ 0xFF for x in b[at:at + 16]); p.write_bytes(bytes(b))


@bad_input('flipped bytes in last.pt', 'new', 'ehl')
def test_flipped_bytes_in_last_pt(world, tmp_path):
    splits, task, ad = world
    cfg = replace(CFG, epochs=3)
    def stop(run, ev):
        if ev == "after_epoch" and run.epoch == 1: raise Stop
    with pytest.raises(Stop):
        T.train(cfg, ad, splits, tmp_path, task, callbacks=[stop], progress=False)
    d = run_dir(tmp_path); flip16(d / "last.pt")
    with no_new_files(tmp_path), pytest.raises(CheckpointError, match=r"checkpoint .*last.pt is damaged: its record .* does not match its checksum; delete"):
        T.train(cfg, ad, splits, tmp_path, task, resume=True, progress=False)
    (d / "last.pt").unlink()
    assert T.train(cfg, ad, splits, tmp_path, task, resume=True, progress=False)["last_epoch"] == 3


@bad_input('truncated last.pt', 'new', 'ehl')
def test_truncated_last_pt(world, tmp_path):
    splits, task, ad = world
    T.train(CFG, ad, splits, tmp_path, task, progress=False)
    d = run_dir(tmp_path); p = d / "last.pt"; p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with no_new_files(tmp_path), pytest.raises(CheckpointError, match=r"last.pt is damaged or truncated .*delete .* \(or run without --resume\)"):
        T.train(CFG, ad, splits, tmp_path, task, resume=True, progress=False)
    assert T.train(CFG, ad, splits, tmp_path, task, resume=False, progress=False)["last_epoch"] == 2


@bad_input('damaged final.json', 'new', 'ehl')
def test_damaged_final_json(world, tmp_path):
    splits, task, ad = world
    T.train(CFG, ad, splits, tmp_path, task, progress=False)
    d = run_dir(tmp_path); (d / "final.json").write_text((d / "final.json").read_text()[:100])
    with no_new_files(tmp_path), pytest.raises(CheckpointError, match=r"run summary .*final.json is damaged or truncated .*delete .*last.pt and resume again"):
        T.train(CFG, ad, splits, tmp_path, task, resume=True, progress=False)
    (d / "last.pt").unlink()
    assert T.train(CFG, ad, splits, tmp_path, task, resume=True, progress=False)["last_epoch"] == 2


@bad_input('damaged cached pretrained model', 'new', 'eh')
def test_damaged_pretrained_model_is_reported_and_rebuilt(tmp_path, monkeypatch):
    from spurnb import pretrain as P
    ad = load_clip("tiny-rn"); path = tmp_path / "tiny-rn-benchmark-k.pt"
    core.torch_save(ad.model.state_dict(), path); core.save_json({"key": "k"}, path.with_suffix(".json"))
    assert P._unreadable(path) is None and P._load_pretrained("tiny-rn", path, "k", "cpu", "fp32").pretrain_meta == {"key": "k"}
    flip16(path)
    with no_new_files(tmp_path):
        assert re.search(r"cached pretrained model .* does not match its checksum; delete it .* pretrains it again", P._unreadable(path))
    path.write_bytes(path.read_bytes()[:5000])
    assert "damaged or truncated" in P._unreadable(path)


@bad_input('orphan .tmp after kill -9 during the feature-cache build', 'new', 'hl')
def test_orphan_tmp_is_cleaned(world, tmp_path):
    splits, _, ad = world
    # a real SIGKILL mid-build, in a child process
    code = ("import os, signal, sys, torch; sys.path.insert(0, sys.argv[1]); import spurnb.cache as C, spurnb.benchmark as D\n"
            "from spurnb.models import load_clip\n"
            "b = D.make_benchmark(n_train=120, n_val=40, n_test=40, cache=False); torch.manual_seed(0); ad = load_clip('tiny-rn')\n"
            "orig = C._trunk_batches\n"
            "def dying(*a, **k):\n    for i, x in enumerate(orig(*a, **k)):\n        if i == 1: os.kill(os.getpid(), signal.SIGKILL)\n        yield x\n"
            "C._trunk_batches = dying\nC.cached_image_features(ad, b.train, batch_size=16, root=sys.argv[2], progress=False)\n")
    r = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == -9, r.stderr[-2000:]
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "the kill left no temporary file: the test did not kill mid-build"
    torch.manual_seed(0); ad2 = load_clip("tiny-rn")
    f = C.cached_image_features(ad2, splits["train"], batch_size=16, root=tmp_path, progress=False)
    assert f.shape[0] == len(splits["train"]) and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@bad_input('symlink inside a dataset root pointing outside it', 'new', 'ehl')
def test_symlink_escape(tmp_path):
    root = waterbirds(tmp_path / "wb", ALL_GROUPS)
    outside = tmp_path / "secret"; outside.mkdir(); jpeg(outside / "x.jpg")
    target = root / "001.Black_footed_Albatross"
    shutil.rmtree(target); target.symlink_to(outside, target_is_directory=True)
    with no_new_files(tmp_path), pytest.raises(D.DataError, match=r"metadata.csv, line \d: image path .* leads through a symbolic link to .*secret.*outside the dataset root"):
        D.load_waterbirds(root, "train")
    target.unlink(); waterbirds(tmp_path / "wb", ALL_GROUPS)
    assert len(D.load_waterbirds(root, "train")) == 4


# ================================================================ 3. every bad input answered before work starts
@bad_input('--epochs -1', 'new', 'eh')
def test_epochs_negative(small_cli, capsys, tmp_path, no_loading):
    code, err = small_cli(capsys, epochs=-1, out=str(tmp_path / "o"))
    assert code == 2 and "--epochs -1: must be an integer >= 1" in err and "Traceback" not in err and files(tmp_path / "o") == []


@bad_input('--batch_size 0 or negative', 'new', 'eh')
@pytest.mark.parametrize("bs", [0, -4])
def test_batch_size(small_cli, capsys, tmp_path, no_loading, bs):
    code, err = small_cli(capsys, batch_size=bs, out=str(tmp_path / "o"))
    assert code == 2 and f"--batch_size {bs}: must be an integer >= 1" in err and files(tmp_path / "o") == []


@bad_input('--lr negative or NaN', 'new', 'eh')
@pytest.mark.parametrize("lr", [-1.0, float("nan"), float("inf"), 0.0])
def test_lr(small_cli, capsys, tmp_path, no_loading, lr):
    code, err = small_cli(capsys, lr=lr, out=str(tmp_path / "o"))
    assert code == 2 and f"--lr {lr}: must be a number > 0" in err and files(tmp_path / "o") == []


@bad_input('unknown method name', 'new', 'eh')
def test_unknown_method_before_loading(small_cli, capsys, tmp_path, no_loading):
    code, err = small_cli(capsys, method="erm,zeroshto", out=str(tmp_path / "o"))
    assert code == 2 and "--method zeroshto: unknown. Did you mean 'zeroshot'" in err and files(tmp_path / "o") == []


@bad_input("unknown dataset name (reported before 'needs --root')", 'new', 'eh')
def test_unknown_dataset_before_root(small_cli, capsys, tmp_path, no_loading):
    code, err = small_cli(capsys, dataset="waterbird", out=str(tmp_path / "o"))
    assert code == 2 and "--dataset waterbird: unknown. Did you mean 'waterbirds'?" in err and "needs --root" not in err and files(tmp_path / "o") == []


@bad_input('unknown preset, sampler, selection, policy, recipe, optimizer, templates', 'new', 'eh')
@pytest.mark.parametrize("flag,value,close", [("preset", "quik", "quick"), ("sampler", "balance", "balanced"),
                                              ("selection", "worst_group", "worst-group"), ("policy", "projections", "projection"),
                                              ("recipe", "lc+vc+l", "lc+vc+ls"), ("optimizer", "adamw", "adam"), ("templates", "shrt", "short")])
def test_unknown_names(small_cli, capsys, tmp_path, no_loading, flag, value, close):
    code, err = small_cli(capsys, out=str(tmp_path / "o"), **{flag: value})
    assert code == 2 and f"--{flag} {value}: unknown. Did you mean '{close}'" in err and files(tmp_path / "o") == []


@bad_input('unknown model or weights tag', 'held', 'eh')
def test_unknown_model(small_cli, capsys, tmp_path, no_loading):
    code, err = small_cli(capsys, model="tiny-rm", out=str(tmp_path / "o"))
    assert code == 2 and "tiny-rn" in err and "--model tiny-rm" in err
    code, err = small_cli(capsys, model="RN50", pretrained="opena", out=str(tmp_path / "o"))
    assert code == 2 and "Did you mean 'openai'?" in err and files(tmp_path / "o") == []


@bad_input("a dataset's root that does not exist", 'new', 'eh')
def test_missing_root_before_loading(small_cli, capsys, tmp_path, no_loading):
    code, err = small_cli(capsys, dataset="waterbirds", root=str(tmp_path / "nope"), out=str(tmp_path / "o"))
    assert code == 2 and "--root" in err and "no such dataset folder" in err and files(tmp_path / "o") == []


@bad_input('PIL decompression bomb', 'new', 'ehl')
def test_decompression_bomb_names_the_file(tmp_path, monkeypatch):
    root = waterbirds(tmp_path, ALL_GROUPS)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)                   # a 16x12 image is "too large": > 2x the limit
    ds = D.load_waterbirds(root, "train")
    with no_new_files(tmp_path), pytest.raises(D.ImageReadError, match=r"metadata.csv, line 2: image .*img_0001.jpg is too large to decode safely.*MAX_IMAGE_PIXELS"):
        ds.load_image(0)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000_000)
    assert ds.load_image(0).size == (16, 12)


@bad_input('missing image file through the command line', 'new', 'eh')
def test_missing_image_names_the_line(tmp_path, capsys):
    p = csv_data(tmp_path, [0, 1, 0, 1, 0, 1, 1, 0], splits=["train"] * 4 + ["val", "val", "test", "test"])
    (tmp_path / "im" / "3.png").unlink()
    ds = D.load_csv(p)
    with pytest.raises(D.ImageReadError, match=r"d.csv, line 5: image file .*3.png does not exist"): ds.fingerprint
    out = tmp_path / "out"
    try: spurnb_train(dataset="csv", root=str(p), pretrained="", method="zeroshot", out=str(out), quiet=True, allow_missing_groups=True); code = 0
    except SystemExit as e: code = e.code
    err = capsys.readouterr().err
    assert code == 1 and "d.csv, line 5: image file" in err and "Traceback" not in err and files(out) == []


@bad_input("CelebA partition-file error reports the partition file's line", 'new', 'eh')
def test_celeba_partition_line(tmp_path):
    root = celeba(tmp_path)
    lines = (root / "list_eval_partition.txt").read_text().splitlines()
    lines[0], lines[3] = lines[3], lines[0]                                # partition order differs from the attribute file
    lines[0] = lines[0].split()[0] + " 7"                                  # image 4, on line 1 of the partition file
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    with no_new_files(tmp_path), pytest.raises(D.DataError, match=r"list_eval_partition.txt, line 1, column 'partition': value '7'"):
        D.load_celeba(root)


@bad_input('library errors print a traceback at the command line', 'new', 'e')
def test_project_errors_print_as_messages(small_cli, capsys, tmp_path, no_loading):
    code, err = small_cli(capsys, epochs=0, out=str(tmp_path / "o"))
    assert code == 2 and err.startswith("spurnb_train: error: --epochs 0") and "--debug" in err and "Traceback" not in err
    with pytest.raises(ArgError): spurnb_train(epochs=0, out=str(tmp_path / "o"), debug=True)


@bad_input('later correct command after the errors above', 'new', 'l')
def test_correct_command_runs(small_cli, capsys, tmp_path):
    code, err = small_cli(capsys, out=str(tmp_path / "o"), method="zeroshot,erm")
    assert code == 0, err
    t = __import__("pandas").read_csv(tmp_path / "o" / "benchmark" / "results.csv")
    assert list(t.method) == ["zeroshot", "erm"]


@bad_input('integer columns stay integers in the results table', 'cli', '')
def test_results_table_integers(world, tmp_path):
    splits, task, ad = world
    s = [T.train(replace(CFG, method=m), ad, splits, tmp_path, task, progress=False) for m in ("zeroshot", "erm")]
    t = E.results_table(s)
    assert str(t.seed.dtype) == "Int64" and str(t.epoch.dtype) == "Int64"
    assert t.seed.isna().tolist() == [True, False] and int(t.seed.iloc[1]) == 0
    assert "." not in t[["seed", "epoch"]].to_string() and "NaN" not in t[["seed", "epoch"]].to_string()   # printed as 0, never 0.0 / NaN


# ================================================================ 4. faults
@bad_input('read-only cache', 'new', 'l')
def test_read_only_cache(world, tmp_path, monkeypatch):
    splits, _, ad = world
    monkeypatch.setenv("SPURNB_CACHE", str(tmp_path / "cache"))
    b = B.make_benchmark(n_train=60, n_val=20, n_test=20)
    f = C.cached_image_features(ad, b.train, progress=False)
    def no_lock(path, *a, **k): raise OSError(30, "Read-only file system", str(path))   # what taking a lock does there
    for mod in (C, B): monkeypatch.setattr(mod, "file_lock", no_lock)
    b2 = B.make_benchmark(n_train=60, n_val=20, n_test=20)
    assert torch.equal(C.cached_image_features(ad, b2.train, progress=False), f)
    if os.geteuid() != 0:                                                   # for real, where permissions bind
        for p in (tmp_path / "cache").rglob("*"): p.chmod(p.stat().st_mode & ~0o222)
        assert torch.equal(C.cached_image_features(ad, B.make_benchmark(n_train=60, n_val=20, n_test=20).train, progress=False), f)


@bad_input('two processes writing the same run directory', 'new', 'ehl')
def test_run_directory_lock(world, tmp_path):
    splits, task, ad = world
    r = T.Run(CFG, ad, splits, tmp_path, task, progress=False); r.dir.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import filelock, sys, time; l = filelock.FileLock(sys.argv[1]); l.acquire(); "
                               "print('held', flush=True); time.sleep(60)", str(r.dir / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=r"run directory .* is in use by another process"):
            T.train(CFG, ad, splits, tmp_path, task, progress=False)
        assert files(r.dir) == [".lock"]                                    # nothing written by the refused run
    finally: holder.kill(); holder.wait()
    assert T.train(CFG, ad, splits, tmp_path, task, progress=False)["last_epoch"] == 2


@bad_input('--resume after the run diverged', 'new', 'ehl')
def test_resume_after_divergence(world, tmp_path):
    splits, task, ad = world
    cfg = replace(CFG, lr=1e30)
    with pytest.raises(T.NonFiniteLoss, match=r"loss term 'ce' is (inf|NaN)"):
        T.train(cfg, ad, splits, tmp_path, task, progress=False)
    d = run_dir(tmp_path); rec = json.loads((d / "diverged.json").read_text())
    assert "loss term" in rec["error"]
    with no_new_files(tmp_path), pytest.raises(T.RunDiverged, match=r"diverged .*Resuming the same config .*diverges again; start a new run with a lower --lr"):
        T.train(cfg, ad, splits, tmp_path, task, resume=True, progress=False)
    assert T.train(replace(cfg, lr=1e-3), ad, splits, tmp_path, task, resume=True, progress=False)["last_epoch"] == 2


@bad_input("--resume with a random-init model (--pretrained '')", 'new', 'l')
def test_random_init_resume_finds_its_run(tmp_path):
    kw = dict(methods="erm", pretrained=None, out=tmp_path, progress=False, epochs=1, data_kw=dict(n_train=60, n_val=20, n_test=20, cache=False))
    a = E.run_methods(**kw)["summaries"][0]
    b = E.run_methods(**kw, resume=True)["summaries"][0]
    assert a["run_dir"] == b["run_dir"] and len(list((tmp_path / "benchmark").glob("erm-*"))) == 1


# ================================================================ what already held, kept so
@bad_input('Waterbirds bad value: file, line, column, allowed values', 'held', 'eh')
def test_waterbirds_bad_value(tmp_path):
    root = waterbirds(tmp_path, ALL_GROUPS)
    (root / "metadata.csv").write_text((root / "metadata.csv").read_text().replace(",0,0,1,/o/ocean/00000002", ",0,0,5,/o/ocean/00000002"))
    with no_new_files(tmp_path), pytest.raises(D.DataError, match=r"metadata.csv, line 3, column 'place': value '5' is not one of \['0', '1'\]"):
        D.load_waterbirds(root)


@bad_input('CelebA bad attribute value', 'held', 'eh')
def test_celeba_bad_value(tmp_path):
    root = celeba(tmp_path)
    text = (root / "list_attr_celeba.txt").read_text().splitlines()
    text[4] = text[4][:11] + " 2" + text[4][13:]
    (root / "list_attr_celeba.txt").write_text("\n".join(text) + "\n")
    with no_new_files(tmp_path), pytest.raises(D.DataError, match=r"list_attr_celeba.txt, line 5, column '5_o_Clock_Shadow': value '2'"):
        D.load_celeba(root, target="5_o_Clock_Shadow")


@bad_input('CSV missing column', 'held', 'eh')
def test_csv_missing_column(tmp_path):
    p = csv_data(tmp_path, [0, 1]); p.write_text(p.read_text().replace("path,", "file,"))
    with no_new_files(tmp_path), pytest.raises(D.DataError, match=r"d.csv: missing column\(s\) \['path'\]; columns found"): D.load_csv(p)


@bad_input('dataset files missing', 'held', 'eh')
def test_dataset_missing(tmp_path):
    with no_new_files(tmp_path), pytest.raises(D.DataNotFoundError, match="kohpangwei/group_DRO"): D.load_waterbirds(tmp_path)
    with pytest.raises(D.DataNotFoundError, match="mmlab.ie.cuhk.edu.hk"): D.load_celeba(tmp_path)


@bad_input('corrupt image file', 'held', 'eh')
def test_corrupt_image(tmp_path):
    root = waterbirds(tmp_path, ALL_GROUPS)
    (root / "001.Black_footed_Albatross/img_0004.jpg").write_bytes(b"\xff\xd8 truncated")
    with no_new_files(tmp_path), pytest.raises(D.ImageReadError, match=r"metadata.csv, line 5: cannot read image .*img_0004.jpg"): D.load_waterbirds(root)[3]


@bad_input('empty split', 'held', 'eh')
def test_empty_split(tmp_path):
    root = waterbirds(tmp_path, [(0, 0, 0), (1, 0, 1)])
    with no_new_files(tmp_path), pytest.raises(D.DataError, match=r"no rows with split == 2 \(test\)"): D.load_waterbirds(root, "test")


@bad_input('path escaping the root lexically', 'held', 'e')
def test_lexical_escape(tmp_path):
    with pytest.raises(D.DataError, match="escapes the dataset root"): D.safe_join(tmp_path, "../x.jpg", "f.csv, line 2")
    with pytest.raises(D.DataError, match="escapes the dataset root"): D.safe_join(tmp_path, "/etc/passwd", "f.csv, line 2")


@bad_input('interrupted run resumes to the uninterrupted result', 'held', 'l')
def test_interrupt_and_resume(world, tmp_path):
    splits, task, ad = world
    cfg = replace(CFG, epochs=2, ckpt_steps=2)
    ref = T.train(cfg, ad, splits, tmp_path / "ref", task, progress=False)
    def stop(run, ev):
        if ev == "after_step" and run.global_step == 5: raise Stop
    with pytest.raises(Stop): T.train(cfg, ad, splits, tmp_path / "x", task, callbacks=[stop], progress=False)
    got = T.train(cfg, ad, splits, tmp_path / "x", task, resume=True, progress=False)
    assert json.dumps(got["history"]) == json.dumps(ref["history"])


@bad_input('NaN loss stops with the term named, best.pt kept', 'held', 'eh')
def test_nan_named_best_kept(world, tmp_path):
    splits, task, ad = world
    def poison(run, ev):
        if ev == "after_epoch" and run.epoch == 1:
            with torch.no_grad(): run.method.adapter.model.visual.attnpool.c_proj.weight.fill_(math.nan)
    torch.manual_seed(0); ad2 = load_clip("tiny-rn")
    with pytest.raises(T.NonFiniteLoss, match=r"loss term 'ce' is NaN .* at epoch 2, step 1"):
        T.train(replace(CFG, epochs=3), ad2, splits, tmp_path, task, callbacks=[poison], progress=False)
    d = run_dir(tmp_path)
    assert torch.load(d / "best.pt", weights_only=True)["epoch"] == 1
    assert torch.isfinite(torch.load(d / "last.pt", weights_only=True)["method"]["adapter"]["visual.attnpool.c_proj.weight"]).all() \
        or json.loads((d / "diverged.json").read_text())["resume_from"].startswith("the last.pt")


@bad_input('feature cache corruption (6 kinds) detected and rebuilt', 'held', 'el')
@pytest.mark.parametrize("kind", ["truncated", "flipped", "no-meta", "header", "size", "bad-meta-json"])
def test_feature_cache_corruption(world, tmp_path, kind):
    splits, _, ad = world
    ds = splits["val"]
    good = C.cached_image_features(ad, ds, root=tmp_path, progress=False).clone()
    npy = next(tmp_path.glob("*.npy")); meta = npy.with_suffix(".json"); C._VERIFIED.clear()
    if kind == "truncated": os.truncate(npy, npy.stat().st_size // 2)
    elif kind == "flipped": flip16(npy, at=npy.stat().st_size - 64)
    elif kind == "no-meta": meta.unlink()
    elif kind == "header": m = json.loads(meta.read_text()); m["shape"][0] += 1; meta.write_text(json.dumps(m))
    elif kind == "size": m = json.loads(meta.read_text()); m["bytes"] += 1; meta.write_text(json.dumps(m))
    else: meta.write_text("{not json")
    with pytest.warns(UserWarning, match="unusable"):
        again = C.cached_image_features(ad, ds, root=tmp_path, progress=False)
    assert torch.equal(again, good)


@bad_input('two processes on one cache are serialised', 'held', 'l')
def test_parallel_cache_builds(world, tmp_path):
    splits, _, ad = world
    calls, out = [], []
    orig = C._trunk_batches
    def counting(*a, **k): calls.append(1); yield from orig(*a, **k)
    C._trunk_batches = counting
    try:
        th = [threading.Thread(target=lambda: out.append(C.cached_image_features(ad, splits["test"], root=tmp_path, progress=False))) for _ in range(2)]
        for t in th: t.start()
        for t in th: t.join()
    finally: C._trunk_batches = orig
    assert len(calls) == 1 and torch.equal(out[0], out[1])


@bad_input('resume into a directory written by another config', 'held', 'eh')
def test_resume_other_config_refused(world, tmp_path):
    splits, task, ad = world
    s = T.train(CFG, ad, splits, tmp_path, task, progress=False)
    other = T.Run(replace(CFG, lr=2e-3), ad, splits, tmp_path, task, progress=False); other.dir = Path(s["run_dir"])
    with no_new_files(tmp_path), pytest.raises(CheckpointError, match="written by a different config"): other.fit(resume=True)


# ================================================================ issue 26: nothing read back is trusted blindly, every fault ends in a message
# kind 'i26'; asserts also w = no wrong result without an error (the run either refuses with a message or gives the right result).
def i26(name, checks="ehlw"): return bad_input(name, "i26", checks)


@contextlib.contextmanager
def small_fs(path, size="256k"):
    "A tmpfs of `size` mounted at `path` (needs root and mount, as in CI); skips the test with a message where it cannot be mounted."
    path = Path(path); path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0: pytest.skip("a small tmpfs needs root (CI runs as root): the full-disk test is skipped here")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode: pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}): the full-disk test is skipped")
    try: yield path
    finally: subprocess.run(["umount", "-l", str(path)], check=False)


def make_read_only(path):
    "Make `path` read-only for real: remount its tmpfs read-only (root), or clear the write bits (others, for whom they bind)."
    if os.geteuid() == 0: subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
    else:
        for p in [Path(path), *Path(path).rglob("*")]: p.chmod(p.stat().st_mode & ~0o222)


def shipped_recipe():
    from spurnb import pretrain as P
    return json.loads((P.WEIGHTS_DIR / "tiny-rn-benchmark.json").read_text())["recipe"]


@i26("1. cached copy of the shipped model with one exponent bit flipped (checksums recomputed)")
def test_shipped_copy_verified(tmp_path, monkeypatch):
    from spurnb import pretrain as P
    monkeypatch.setenv("SPURNB_CACHE", str(tmp_path))
    path, _ = P.shipped_weights("tiny-rn", shipped_recipe()); good = core.torch_load(path)
    bad = {k: v.clone() for k, v in good.items()}; k = next(k for k, v in bad.items() if v.is_floating_point() and v.numel())
    bad[k].view(-1).view(torch.int32)[0] ^= 1 << 30                        # one exponent bit: a valid file with wrong weights
    core.torch_save(bad, path)
    with pytest.warns(UserWarning, match=r"cached copy .*shipped.*\.pt of the shipped weights .* is not theirs \(its tensors differ.*re-created"):
        again, _ = P.shipped_weights("tiny-rn", shipped_recipe())
    assert all(torch.equal(core.torch_load(again)[n], v) for n, v in good.items())   # the later run uses the shipped weights
    path.write_bytes(path.read_bytes()[:4000])                              # truncated: re-created too, not a raw RuntimeError
    with pytest.warns(UserWarning, match="damaged or truncated.*re-created"): P.shipped_weights("tiny-rn", shipped_recipe())
    assert torch.equal(core.torch_load(path)[k], good[k]) and not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def _rewrite_entry(npy, arr):
    "Replace a feature-cache entry's array by `arr` and make its metadata agree (shape, bytes, checksum): a consistent but wrong entry."
    np.save(npy, arr); m = json.loads(npy.with_suffix(".json").read_text())
    m.update(shape=list(arr.shape), bytes=npy.stat().st_size, checksum=C._checksum(npy)); npy.with_suffix(".json").write_text(json.dumps(m))
    C._VERIFIED.clear()


@i26("2a. feature-cache rows reversed with the checksum recomputed", "elw")
def test_feature_cache_reordered_rows_rejected(world, tmp_path):
    splits, _, ad = world
    ds = splits["val"]
    good = C.cached_image_features(ad, ds, root=tmp_path, progress=False).clone()
    npy = next(tmp_path.glob("*.npy")); _rewrite_entry(npy, np.load(npy)[::-1].copy())
    with pytest.warns(UserWarning, match=r"unusable .*row\(s\) \[.*\] do not match the features the model computes now.*rebuilding"):
        again = C.cached_image_features(ad, ds, root=tmp_path, progress=False)
    assert torch.equal(again, good)


@i26("2b. feature-cache entry with fewer rows than the split (consistent metadata)", "elw")
def test_feature_cache_row_count_checked(world, tmp_path):
    splits, _, ad = world
    ds = splits["val"]
    good = C.cached_image_features(ad, ds, root=tmp_path, progress=False).clone()
    npy = next(tmp_path.glob("*.npy")); _rewrite_entry(npy, np.load(npy)[:-3].copy())
    with pytest.warns(UserWarning, match=rf"feature cache .*{npy.name} is unusable .*it holds {len(ds) - 3} rows, asked {len(ds)}\); rebuilding"):
        again = C.cached_image_features(ad, ds, root=tmp_path, progress=False)
    assert torch.equal(again, good)
    m = json.loads(npy.with_suffix(".json").read_text())                   # the key's inputs are stored with the entry
    assert m["rows"] == len(ds) and m["dataset_fingerprint"] == ds.fingerprint and m["trunk"] == C.trunk_fingerprint(ad) and m["transform"]


@i26("3. a moved or copied run directory reads its own files", "lw")
def test_run_directory_relocatable(world, tmp_path):
    splits, task, ad = world
    s = T.train(CFG, ad, splits, tmp_path / "a", task, progress=False)
    d = Path(s["run_dir"]); assert json.loads((d / "final.json").read_text())["run_dir"] == "."
    shutil.copytree(d.parent, tmp_path / "b"); shutil.move(str(d.parent), str(tmp_path / "c"))   # a copy, and the original moved away
    for where in ("b", "c"):
        r = T.train(CFG, ad, splits, tmp_path / where, task, resume=True, progress=False)
        assert Path(r["run_dir"]) == tmp_path / where / d.name and r["history"] == s["history"]
        T.load_method(r["run_dir"], ad, task)                              # reads the directory it was given (the original is gone)


@i26("4. config.json edited (method, templates) disagrees with the checkpoint")
@pytest.mark.parametrize("key,value,diff", [("method", "spurnb", "method: 'erm' vs 'spurnb'"),
                                            ("templates", "imagenet", "opts.templates: 'short' vs 'imagenet'"),
                                            ("policy", "full", "opts.policy: 'projection' vs 'full'")])
def test_config_json_must_match_checkpoint(world, tmp_path, key, value, diff):
    splits, task, ad = world
    s = T.train(CFG, ad, splits, tmp_path, task, progress=False); d = Path(s["run_dir"])
    text = (d / "config.json").read_text(); c = json.loads(text)
    (c["config"] if key == "method" else c["config"]["opts"])[key] = value; (d / "config.json").write_text(json.dumps(c))
    with no_new_files(tmp_path), pytest.raises(CheckpointError, match=rf"config.json and .*best.pt disagree: {re.escape(diff)}[ ;].*train the run"):   # another method: its options differ too, listed after
        T.load_method(d, ad, task)
    (d / "config.json").write_text(text)
    T.load_method(d, ad, task)


@i26("4b. --resume across a config change names the differing keys and the fix", "ehw")
def test_resume_config_change_diff(world, tmp_path):
    splits, task, ad = world
    s = T.train(CFG, ad, splits, tmp_path, task, progress=False)
    other = T.Run(replace(CFG, lr=2e-3), ad, splits, tmp_path, task, progress=False); other.dir = Path(s["run_dir"])
    with no_new_files(tmp_path), pytest.raises(CheckpointError, match=r"different config: lr: 0.001 vs 0.002 \(the checkpoint's value, then this run's\)\. Run with"):
        other.fit(resume=True)


def attrs_file(path, **edit):
    d = dict(classes=["landbird", "waterbird"], attrs=["land", "water"], attr_prompts=["land", "water"], attr_context_prompts=["on land", "on water"])
    d.update(edit); path.write_text(json.dumps(d)); return path


@i26("5. --attrs file: wrong lengths, duplicates, non-strings, another dataset's (a project error)", "ehw")
@pytest.mark.parametrize("edit,msg", [(dict(attr_prompts=["land", "water", "sky"]), r"one prompt per attribute is needed, but the lengths differ"),
                                      (dict(attrs=["land", "land"], attr_prompts=["land", "land"]), r"field 'attrs' names \['land'\] more than once"),
                                      (dict(attrs=["land", 3]), r"field 'attrs' must be a list of non-empty strings; it holds 3 \(int\)"),
                                      (dict(classes=["cat", "dog"]), r"comes from another dataset")])
def test_attrs_file_checked(tmp_path, edit, msg):
    from spurnb.detect import load_attributes, DetectionError
    assert issubclass(DetectionError, SpurnbError)
    p = attrs_file(tmp_path / "attributes.json", **edit)
    with no_new_files(tmp_path), pytest.raises(DetectionError, match=rf"{re.escape(str(p))}.*{msg}"): load_attributes(p, ["landbird", "waterbird"])
    assert load_attributes(attrs_file(tmp_path / "ok.json"), ["landbird", "waterbird"])["attrs"] == ["land", "water"]


def split_csv(root, rows):
    "rows: (y, a, split) triples; one image per row."
    for k in range(len(rows)): jpeg(root / "im" / f"{k}.png", seed=k)
    (root / "d.csv").write_text("path,y,a,split\n" + "".join(f"im/{k}.png,{y},{a},{s}\n" for k, (y, a, s) in enumerate(rows)))
    return root / "d.csv"

FULL = [(y, a, s) for s in ("train", "train", "val", "test") for y in (0, 1) for a in (0, 1)]


@i26("6a. one class, or one attribute value, in train", "ehw")
@pytest.mark.parametrize("col,msg", [(0, "every training example has class '0'"), (1, "every training example has attribute value '0'")])
def test_one_class_or_attr_refused(tmp_path, capsys, col, msg):
    rows = [tuple(0 if (i == col and s == "train") else v for i, v in enumerate((y, a))) + (s,) for y, a, s in FULL]
    p = split_csv(tmp_path, rows); out = tmp_path / "out"
    try: spurnb_train(dataset="csv", root=str(p), pretrained="", method="erm", epochs=1, out=str(out), quiet=True); code = 0
    except SystemExit as e: code = e.code
    err = capsys.readouterr().err
    assert code == 1 and msg in err and "need at least two of each" in err and files(out) == []


@i26("6b. a group missing from the test split: refused, or allowed and named")
def test_missing_test_group(tmp_path, capsys):
    p = split_csv(tmp_path, [r for r in FULL if r != (1, 1, "test")]); out = tmp_path / "out"
    try: spurnb_train(dataset="csv", root=str(p), pretrained="", method="zeroshot", out=str(out), quiet=True); code = 0
    except SystemExit as e: code = e.code
    err = capsys.readouterr().err
    assert code == 1 and "the test split has no example of group(s) ['1 / 1'], so its worst-group accuracy would be over 3 of 4" in err and files(out) == []
    r = E.run_methods("zeroshot", "csv", str(p), pretrained=None, out=out, progress=False, allow_missing_groups=True)
    assert r["summaries"][0]["test"]["missing_groups"] == ["1 / 1"] and json.loads((Path(r["summaries"][0]["run_dir"]) / "final.json").read_text())["test"]["missing_groups"] == ["1 / 1"]


@i26("6c. unknown split value ('trian') refused with its line", "ehlw")
def test_split_typo(tmp_path):
    rows = list(FULL); rows[1] = (0, 1, "trian")
    p = split_csv(tmp_path, rows)
    with no_new_files(tmp_path), pytest.raises(D.DataError, match=r"d.csv, line 3, column 'split': value 'trian' is not one of \['train', 'val', 'test'\] Did you mean 'train'"):
        D.load_csv(p, split="val")
    rows[1] = (0, 1, "train"); assert len(D.load_csv(split_csv(tmp_path, rows), split="train")) == 8


@i26("6d. labels written 0.0/1.0 are the integers 0 and 1", "lw")
def test_float_looking_labels(tmp_path):
    p = split_csv(tmp_path, FULL); p.write_text(re.sub(r",(\d)(?=,)", r",\1.0", p.read_text()))
    ds = D.load_csv(p, split="train")
    assert ds.classnames == ["0", "1"] and ds.attrnames == ["0", "1"] and ds.y.tolist() == [y for y, a, s in FULL if s == "train"]


@i26("7. a FIFO in the image root: refused at once, no hang, no lock held", "ew")
def test_fifo_refused(tmp_path):
    p = split_csv(tmp_path, FULL); fifo = tmp_path / "im" / "3.png"; fifo.unlink(); os.mkfifo(fifo)
    ds = D.load_csv(p, split="train"); got = []
    def read():
        for f in (lambda: ds.fingerprint, lambda: ds.load_image(3)):
            try: f()
            except D.ImageReadError as e: got.append(str(e))
    th = threading.Thread(target=read, daemon=True); th.start(); th.join(20)
    assert not th.is_alive(), "reading a FIFO as an image hung"
    assert len(got) == 2 and all(re.search(r"d.csv, line 5: image path .*3.png is a FIFO, not a regular file", g) for g in got)


CACHE_BUILD = ("import sys; sys.path.insert(0, sys.argv[1]); import torch, spurnb.cache as C, spurnb.benchmark as B, spurnb.core as core\n"
               "from spurnb.models import load_clip\n"
               "b = B.make_benchmark(n_train=120, n_val=40, n_test=40, cache=False); torch.manual_seed(0)\n"
               "try: C.cached_image_features(load_clip('tiny-rn'), b.train, root=sys.argv[2], progress=False)\n"
               "except core.SpurnbError as e: print('ERROR', type(e).__name__, e); sys.exit(1)\n")


@i26("8a. full disk under the feature cache: a message before writing (no SIGBUS, no orphan .tmp)")
def test_full_disk_feature_cache(world, tmp_path):
    splits, _, ad = world
    with small_fs(tmp_path / "fs", "64k") as fs:
        r = subprocess.run([sys.executable, "-c", CACHE_BUILD, str(Path(__file__).parent.parent), str(fs)], capture_output=True, text=True, timeout=600)
        assert r.returncode == 1, f"exit {r.returncode} (-7: SIGBUS) {r.stderr[-1500:]}"
        assert re.search(r"ERROR DiskError no space left on .*fs \(\d+\.\d MB needed, 0\.\d MB free\) writing .*\.npy: free some space, or set SPURNB_CACHE", r.stdout), r.stdout
        assert list(fs.iterdir()) == [] or all(p.suffix == ".lock" for p in fs.iterdir())   # nothing half-written
    f = C.cached_image_features(ad, splits["train"], root=tmp_path / "roomy", progress=False)
    assert f.shape[0] == len(splits["train"])


@i26("8b. full --out: checkpoints refused before writing, with a message")
def test_full_disk_out(world, tmp_path, capsys, small_cli):
    with small_fs(tmp_path / "fs", "1m") as fs:
        code, err = small_cli(capsys, out=str(fs), method="erm")
        assert code == 1 and re.search(r"no space left on .*fs/benchmark/erm-\S+ \(\d+\.\d MB needed, \d+\.\d MB free\) writing \w+\.pt", err) and "Traceback" not in err and "inline_container" not in err, err
        assert not [p for p in fs.rglob("*") if p.is_file() and p.suffix in (".tmp", ".pt")]
    code, err = small_cli(capsys, out=str(tmp_path / "roomy"), method="erm"); assert code == 0, err


@i26("8c. read-only and file --out refused before loading", "ew")
def test_read_only_out(tmp_path, capsys, small_cli, no_loading):
    (tmp_path / "f").write_text("x")
    code, err = small_cli(capsys, out=str(tmp_path / "f"))
    assert code == 2 and "--out" in err and "is a file, not a folder" in err
    with small_fs(tmp_path / "ro", "64k") as ro:
        make_read_only(ro)
        code, err = small_cli(capsys, out=str(ro))
        assert code == 1 and re.search(r"ro is read-only \(.*\): set SPURNB_CACHE or --out to a writable folder", err) and "Traceback" not in err, err


@i26("9. a complete read-only cache works (shipped model and features, no lock taken); an empty one names the fix", "elw")
def test_read_only_cache_for_real(world, tmp_path, monkeypatch):
    from spurnb import pretrain as P
    splits, _, ad = world
    with small_fs(tmp_path / "cache", "64m") as cache:
        monkeypatch.setenv("SPURNB_CACHE", str(cache))
        w, _ = P.shipped_weights("tiny-rn", shipped_recipe())
        f = C.cached_image_features(ad, splits["val"], progress=False).clone()
        for p in cache.rglob("*.lock"): p.unlink()                       # a cache copied from elsewhere has no lock files
        make_read_only(cache); C._VERIFIED.clear()
        assert P.shipped_weights("tiny-rn", shipped_recipe())[0] == w
        assert torch.equal(C.cached_image_features(ad, splits["val"], progress=False), f)
        with pytest.raises(core.DiskError, match=r"cache/features is read-only \(.*\): set SPURNB_CACHE or --out to a writable folder"):
            C.cached_image_features(ad, splits["test"], progress=False)    # an entry it lacks: the fix, not a PermissionError


@i26("10. conflicting options across methods and repeated methods: refused before the first trains", "ehw")
@pytest.mark.parametrize("kw,msg", [(dict(method="groupdro,jtt,dfr", sampler="balanced"), "--sampler balanced: method jtt cannot train with it"),
                                    (dict(method="erm,erm"), "--method erm,erm: erm named twice")])
def test_conflicting_methods(small_cli, capsys, tmp_path, no_loading, kw, msg):
    code, err = small_cli(capsys, out=str(tmp_path / "o"), **kw)
    assert code == 2 and msg in err and files(tmp_path / "o") == []


@i26("11a. --seed too large for a 64-bit seed", "ew")
def test_seed_overflow(small_cli, capsys, tmp_path, no_loading):
    code, err = small_cli(capsys, seed=10**20, out=str(tmp_path / "o"))
    assert code == 2 and "--seed 100000000000000000000: must be an integer from 0 to 2**63 - 1" in err and "Overflow" not in err


@i26("11b. a refused --checkpoint pickle: no advice to use weights_only=False", "ew")
def test_checkpoint_pickle_no_weights_only_hint(tmp_path):
    marker = tmp_path / "code-ran"; torch.save({"x": _Evil(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as e: load_clip("tiny-rn", checkpoint=tmp_path / "evil.pt")
    assert "refused to load weights file" in str(e.value) and "makedirs" in str(e.value) and "weights_only" not in str(e.value) and not marker.exists()


@i26("11c. a damaged shipped record of another configuration does not break the default run", "elw")
def test_broken_shipped_record(tmp_path, monkeypatch):
    from spurnb import pretrain as P
    d = tmp_path / "weights"; shutil.copytree(P.WEIGHTS_DIR, d); monkeypatch.setenv("SPURNB_CACHE", str(tmp_path / "cache"))
    (d / "tiny-rn-benchmark-fashion.json").write_text("{not json")
    with pytest.warns(UserWarning, match=r"skipped damaged shipped weights record\(s\) .*tiny-rn-benchmark-fashion.json .*reinstall spurnb"):
        assert P.shipped_weights("tiny-rn", "no-such-recipe", weights_dir=d) is None
    assert P.shipped_weights("tiny-rn", shipped_recipe(), weights_dir=d) is not None


@i26("11d. a CSV that is not UTF-8 names the line and the fix", "ehw")
def test_non_utf8_csv(tmp_path):
    p = split_csv(tmp_path, FULL); p.write_bytes(p.read_bytes().replace(b"im/5.png", b"im/\xe95.png"))
    with no_new_files(tmp_path), pytest.raises(D.DataError, match=r"d.csv, line 7: byte 0xe9 is not UTF-8 text; save the file as UTF-8"): D.load_csv(p)


@i26("11e. an image over PIL's pixel limit is refused, not decoded with a warning", "ew")
def test_large_image_refused(tmp_path, monkeypatch):
    p = split_csv(tmp_path, FULL); ds = D.load_csv(p, split="train")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)                   # 16x12 = 192 pixels: over the limit, under twice it
    with warnings.catch_warnings(), pytest.raises(D.ImageReadError, match=r"line 2: image .*0.png is too large to decode safely"):
        warnings.simplefilter("ignore"); ds.load_image(0)


@i26("every project error type is a SpurnbError (the command line prints it as a message)", "ew")
def test_every_project_error_is_a_spurnb_error():
    import importlib, inspect, pkgutil, spurnb
    mods = [importlib.import_module(f"spurnb.{m.name}") for m in pkgutil.iter_modules(spurnb.__path__) if not m.name.startswith("_")]
    errors = {f"{c.__module__}.{c.__qualname__}": c for m in mods for _, c in inspect.getmembers(m, inspect.isclass)
              if issubclass(c, Exception) and c.__module__.startswith("spurnb.")}
    assert "spurnb.detect.DetectionError" in errors and "spurnb.core.DiskError" in errors
    # spurnb.front imports no torch, so not spurnb.core: its BadArg becomes ArgError at every command and library entry (run_methods)
    assert [n for n, c in errors.items() if not issubclass(c, SpurnbError) and n != "spurnb.front.BadArg"] == []
    import spurnb.experiment as E
    with pytest.raises(ArgError, match="erm:balanc"): E.method_runs("erm:balanc")


def test_every_class_has_a_test():
    "The catalogue and the tests agree; print the counts the report quotes."
    names = {n for n, v in globals().items() if n.startswith("test_") and callable(v)} - {"test_every_class_has_a_test"}
    tested = {f for *_, f in CLASSES.values()}
    assert tested == names, f"tests without a class: {names - tested}; classes without a test: {tested - names}"
    tested = {f for *_, f in CLASSES.values()}
    rows = [(k, c) for k, c, _ in CLASSES.values() if k != "cli"]
    n = lambda kind, flag: sum(1 for k, c in rows if (kind is None or k == kind) and flag in c)
    for kind in ("new", "held", "i26", None):
        print(f"{kind or 'all'}: {sum(1 for k, _ in rows if kind in (None, k))} classes; asserted: clear error {n(kind, 'e')}, "
              f"nothing half-written {n(kind, 'h')}, later run works {n(kind, 'l')}, no wrong result without an error {n(kind, 'w')}")
    assert all("w" in c for k, c in rows if k == "i26"), "every case of issue 26 asserts that no wrong result comes without an error"
