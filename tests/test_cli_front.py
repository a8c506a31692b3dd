"""Every command fails kindly and fast (issue 23 §3): a list of mistakes crossed with spurnb_train, spurnb_detect,
spurnb_benchmark and spurnb_results. Each mistake must exit 2 with one message that names the flag, name or path
and the fix (no traceback), and a name or range mistake must be answered without importing torch, in under 1 s of CPU time (process time,
which the load of a shared machine does not inflate as it does wall time)."""
import os, subprocess, sys
import pytest

MAIN = dict(train="train_main", detect="detect_main", benchmark="benchmark_main", results="results_main")

# (command, arguments, what the message must contain, fast: a name or a range, answered before torch loads)
MISTAKES = [
    ("train", ["--method", "ermm"], ["--method ermm", "Did you mean 'erm'"], True),
    ("train", ["--method", "erm:balancd"], ["--method erm:balancd", "neither a sampler", "erm:balanced"], True),
    ("train", ["--dataset", "waterbird"], ["--dataset waterbird", "Did you mean 'waterbirds'"], True),
    ("train", ["--dataset", "waterbirds"], ["--dataset waterbirds needs --root"], True),
    ("train", ["--dataset", "celeba", "--root", "no/such/dir"], ["--root no/such/dir", "no such dataset folder"], True),
    ("train", ["--batch-size", "0"], ["--batch_size 0", "integer >= 1"], True),
    ("train", ["--epochs", "-2"], ["--epochs -2", "integer >= 1"], True),
    ("train", ["--bach_size", "8"], ["--bach_size", "Did you mean --batch_size"], True),
    ("train", ["--sampler", "balance"], ["--sampler balance", "'balanced'"], True),
    ("train", ["--checkpoint", "no/such.pt"], ["--checkpoint no/such.pt", "no such weights file"], True),
    ("train", ["--opt", "eta=0.1", "--method", "erm"], ["--opt", "eta"], False),
    ("detect", ["--dataset", "waterbirds"], ["--dataset waterbirds needs --root"], True),
    ("detect", ["--predictions", "runs/nope"], ["--predictions runs/nope", "not a run directory", "zeroshot"], True),
    ("detect", ["--scorer", "clipp"], ["--scorer clipp", "Did you mean 'clip'"], True),
    ("detect", ["--by", "gpa"], ["--by gpa", "Did you mean 'gap'"], True),
    ("detect", ["--min-count", "0"], ["--min_count 0", "integer >= 1"], True),
    ("detect", ["--vocab", "no/words.txt"], ["--vocab no/words.txt", "no such vocabulary file"], True),
    ("benchmark", ["--source", "fashion"], ["--source fashion", "Did you mean 'fashion-mnist'"], True),
    ("benchmark", ["--corr", "1.5"], ["--corr 1.5", "[0, 1]"], True),
    ("benchmark", ["--n-train", "0"], ["--n_train 0", "integer >= 1"], True),
    ("results", ["no/such/runs"], ["no/such/runs: no such folder of runs", "spurnb_train --out"], True),
]


CHILD = r"""
import contextlib, io, json, sys, time
from spurnb import cli
out = []
for cmd, args in json.loads(sys.argv[1]):
    err, t0, code = io.StringIO(), time.process_time(), None
    sys.argv = [f"spurnb_{cmd}", *args]
    with contextlib.redirect_stderr(err):
        try: getattr(cli, {MAIN!r}[cmd])()
        except SystemExit as e: code = e.code
    out.append(dict(code=code, stderr=err.getvalue(), cpu=time.process_time() - t0, torch="torch" in sys.modules))
print(json.dumps(out))
"""


def run_all(cases):
    "Run the mistakes in one fresh process, in order; per mistake its exit code, stderr, CPU seconds and whether torch is loaded after it."
    import json
    r = subprocess.run([sys.executable, "-c", CHILD.replace("{MAIN!r}", repr(MAIN)), json.dumps(cases)], capture_output=True, text=True,
                       timeout=600, env={**os.environ, "SPURNB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_every_mistake_fails_kindly():
    "The fast mistakes first, in one process: none may load torch; then the rest."
    cases = sorted(MISTAKES, key=lambda m: not m[3])
    for (cmd, args, says, fast), r in zip(cases, run_all([(c, a) for c, a, _, _ in cases])):
        what = f"spurnb_{cmd} {' '.join(args)}"
        assert r["code"] == 2, (what, r)
        assert "Traceback" not in r["stderr"] and r["stderr"].startswith(f"spurnb_{cmd}: error: "), (what, r["stderr"])
        for s in says: assert s in r["stderr"], f"{what}: {s!r} not in {r['stderr']!r}"
        if fast:
            assert not r["torch"], f"{what}: a name or range check imported torch"
            assert r["cpu"] < 1.0, f"{what}: a name or range check took {r['cpu']:.2f} s of CPU"


def run(cmd, args):
    code = f"import sys; from spurnb.cli import {MAIN[cmd]} as m; sys.argv[0] = 'spurnb_{cmd}'; m()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "SPURNB_OFFLINE": "1"})


def test_debug_shows_the_traceback():
    r = run("detect", ["--scorer", "clipp", "--debug"])
    assert "Traceback" in r.stderr and "BadArg" in r.stderr


def test_offline_pretrained_names_the_checkpoint_flag():
    "Offline, open_clip weights that are not cached: the message names --checkpoint, not a Python call."
    from spurnb.models import _cached_weights
    import open_clip
    if _cached_weights(open_clip.get_pretrained_cfg("RN50", "openai")): pytest.skip("RN50/openai weights are cached here")
    for cmd in ("train", "detect"):
        r = run(cmd, ["--model", "RN50", "--pretrained", "openai"])
        assert r.returncode == 2 and "--checkpoint FILE" in r.stderr and "load_clip(" not in r.stderr, r.stderr
