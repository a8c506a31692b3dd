"""The package as a user gets it: build the sdist and the wheel, build a wheel again from the unpacked sdist, install that
wheel into a fresh virtual environment with only the user requirements, and run the user's commands from outside the clone.

`SPURNB_ARTIFACT_CONSTRAINTS` names a pip constraints file for the fresh environment (default: the pinned torch and
torchvision of .ci/requirements.txt, so the environment gets the torch on this machine's disk instead of downloading
another); tools/lowest_bounds.sh runs this same test with every requirement at its lower bound.
"""
import configparser, json, os, re, shutil, subprocess, sys, tarfile, time, venv
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CFG = configparser.ConfigParser(delimiters=["="]); CFG.read(ROOT / "settings.ini")
# what a user install must never need: the dev toolchain of settings.ini (nbdev and its notebook stack, pytest, build, twine)
DEV_ONLY = ["nbdev", "execnb", "jupyterlab", "ipywidgets", "jupytext", "pytest", "build", "twine", "nbformat", "nbconvert"]


def run(cmd, cwd, env=None, timeout=900):
    "Run `cmd`, fail with its output if it fails; return stdout."
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}) in {cwd}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    print(f"[{time.perf_counter() - t0:6.1f} s] {' '.join(map(str, cmd))[:160]}")
    return r.stdout


def constraints(tmp: Path) -> Path:
    "The constraints file for the fresh environment."
    if os.environ.get("SPURNB_ARTIFACT_CONSTRAINTS"): return Path(os.environ["SPURNB_ARTIFACT_CONSTRAINTS"]).resolve()
    # the torch make test installs: the Makefile's TORCH (.ci/requirements*.txt leave torch to the Makefile, which picks the build)
    line = next((l for l in (ROOT / "Makefile").read_text().splitlines() if l.startswith("TORCH ?=")), "")
    pins = [w for w in line.split("=", 1)[-1].split() if re.match(r"(torch|torchvision)==", w)]
    assert len(pins) == 2, f"the Makefile's TORCH should pin torch and torchvision, found {pins}"
    (tmp / "constraints.txt").write_text("\n".join(pins) + "\n")
    return tmp / "constraints.txt"


@pytest.fixture(scope="module")
def user_env(tmp_path_factory):
    "(python of a fresh venv holding only the wheel built from the sdist and its user requirements, a directory outside the clone)."
    tmp = tmp_path_factory.mktemp("artifacts"); dist, dist2 = tmp / "dist", tmp / "dist-from-sdist"
    # the sdist and the wheel, as a release builds them (with build isolation: only pyproject's build requirements);
    # setuptools reuses build/lib, where a module deleted since an earlier build would still sit and ship (it did: docs.py)
    for d in (ROOT / "build").glob("lib*"): shutil.rmtree(d)
    for d in (ROOT / "build").glob("bdist.*"): shutil.rmtree(d)
    run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", dist, ROOT], cwd=tmp)
    sdist, = dist.glob("spurnb-*.tar.gz"); wheel, = dist.glob("spurnb-*.whl")
    # a wheel from the unpacked sdist: the sdist carries everything setup.py reads
    with tarfile.open(sdist) as t: t.extractall(tmp / "sdist", filter="data")
    src, = (tmp / "sdist").iterdir()
    run([sys.executable, "-m", "build", "--wheel", "--outdir", dist2, src], cwd=tmp)
    wheel2, = dist2.glob("spurnb-*.whl")
    env_dir = tmp / "venv"; venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    run([py, "-m", "pip", "install", "-q", "-c", constraints(tmp), wheel2], cwd=tmp, timeout=1800)
    home = tmp / "user"; home.mkdir()
    yield py, home, wheel, wheel2
    if not os.environ.get("SPURNB_ARTIFACT_KEEP"): shutil.rmtree(env_dir, ignore_errors=True)   # ~6 GB with CUDA torch


def user(py, home):
    "The environment of a user: the fresh venv first on PATH, a cache of their own, nothing of the clone."
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPURNB_CACHE", "VIRTUAL_ENV")}
    env.update(PATH=f"{py.parent}:{env['PATH']}", SPURNB_CACHE=str(home / "cache"), MPLBACKEND="Agg", HOME=str(home))
    return env


def test_wheels_carry_the_package(user_env):
    import zipfile
    py, home, wheel, wheel2 = user_env
    for w in (wheel, wheel2):
        names = zipfile.ZipFile(w).namelist()
        assert "spurnb/weights/tiny-rn-benchmark.safetensors" in names and "spurnb/weights/tiny-rn-benchmark.json" in names, w
        assert not [n for n in names if n.startswith(("nbs/", "tests/", "docs/"))], f"{w.name} carries files outside the package"
    assert sorted(zipfile.ZipFile(wheel).namelist()) == sorted(zipfile.ZipFile(wheel2).namelist()), "wheel from the sdist differs"


def test_user_install_has_no_dev_only_package(user_env):
    py, home, *_ = user_env
    installed = {d["name"].lower() for d in json.loads(run([py, "-m", "pip", "list", "--format", "json"], cwd=home))}
    assert not installed & set(DEV_ONLY), f"a user install pulled dev-only packages: {sorted(installed & set(DEV_ONLY))}"
    run([py, "-m", "pip", "check"], cwd=home)


def test_every_public_module_imports(user_env):
    py, home, *_ = user_env
    # spurnb.docs is the docs builder, a developer's tool that needs the notebook stack (issue 12 takes it out of the package)
    mods = sorted(p.stem for p in (ROOT / "spurnb").glob("*.py") if not p.stem.startswith("_") and p.stem != "docs")
    out = run([py, "-c", "import importlib, spurnb; print(spurnb.__file__)\n" + "".join(f"importlib.import_module('spurnb.{m}')\n" for m in mods)],
              cwd=home, env=user(py, home))
    assert str(ROOT) not in out and "site-packages" in out, f"imported spurnb from {out.strip()}, not the fresh environment"


def test_console_scripts_run_from_outside_the_clone(user_env):
    py, home, *_ = user_env
    env = user(py, home)
    out = run(["spurnb_train", "--help"], cwd=home, env=env)
    assert "--method" in out and "--epochs" in out
    # one epoch of every default entry on the default benchmark (digits-shortcut), with its shipped tiny CLIP: no pretraining
    run(["spurnb_train", "--epochs", "1", "--quiet", "--out", str(home / "runs")], cwd=home, env=env)
    import csv
    table = list(csv.DictReader(open(home / "runs" / "digits-shortcut" / "results.csv")))
    assert [(r["method"], r["sampler"]) for r in table] == [("zeroshot", ""), ("erm", "natural"), ("erm", "balanced"),
                                                            ("spurnb", "balanced"), ("spurnb", "natural")], table
    rows = {r["method"]: r for r in table}
    assert all(r["epoch"] == "1" for r in table if r["method"] != "zeroshot"), table
    # the shipped tiny CLIP knows the digits: zero-shot's average is far above what a random CLIP gets (about chance, 0.5).
    # digits-shortcut's CLIP is biased by design (tutorials/paper_regime): measured zero-shot average 0.76, worst group 0.50
    assert float(rows["zeroshot"]["average"]) > 0.7 and all(0 <= float(r["average"]) <= 1 for r in rows.values()), rows
    models = sorted(p.name for p in (home / "cache" / "models").glob("tiny-rn-benchmark-*.pt"))
    assert models and all("-shipped-" in m for m in models), f"the run pretrained instead of using the shipped weights: {models}"
