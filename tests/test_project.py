"Project-level checks: the shape of the tree, the README's two commands, console scripts, notebooks ↔ modules."
import configparser, importlib, json, re, subprocess
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CFG = configparser.ConfigParser(delimiters=["="]); CFG.read(ROOT / "settings.ini")


def test_top_level_shape():
    for name in ["nbs", "spurnb", "settings.ini", "setup.py", "tests", "docs", "README.md", "Makefile", ".ci/run", "LICENSE"]:
        assert (ROOT / name).exists(), f"missing {name}"
    assert CFG["DEFAULT"]["doc_path"] == "docs" and CFG["DEFAULT"]["tst_flags"] == "slow cuda"


def test_readme_commands_and_ci():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    ci = [l.strip() for l in (ROOT / ".ci/run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert "make test" in ci, ".ci/run must call the README's test command"
    # the README is generated from nbs/index.ipynb: every README line of prose appears in the notebook
    index = "".join("".join(c["source"]) for c in json.loads((ROOT / "nbs/index.ipynb").read_text())["cells"])
    assert "make run" in index and "make test" in index


@pytest.mark.parametrize("entry", CFG["DEFAULT"]["console_scripts"].split())
def test_console_scripts_resolve(entry):
    name, target = entry.split("=")
    mod, fn = target.split(":")
    assert callable(getattr(importlib.import_module(mod), fn)), entry


def _exported_modules():
    for nb in sorted((ROOT / "nbs").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb.parts: continue
        for c in json.loads(nb.read_text())["cells"]:
            m = re.search(r"^#\|\s*default_exp\s+(\S+)", "".join(c["source"]), re.M)
            if m: yield nb.name, m.group(1); break


@pytest.mark.parametrize("nb,mod", list(_exported_modules()))
def test_every_exported_module_imports(nb, mod):
    importlib.import_module(f"spurnb.{mod}")


def _notebooks():
    return [nb for nb in sorted((ROOT / "nbs").rglob("*.ipynb")) if ".ipynb_checkpoints" not in nb.parts]


@pytest.mark.parametrize("nb", _notebooks(), ids=lambda p: p.name)
def test_notebook_runs_as_a_reader_runs_it(nb):
    "A kernelspec (so Jupyter opens it with Python), and no cell rewrites tracked files unless asked (SPURNB_WRITE=1)."
    d = json.loads(nb.read_text())
    assert d["metadata"].get("kernelspec", {}).get("name") == "python3", f"{nb.name}: no python3 kernelspec in its metadata"
    for c in d["cells"]:
        s = "".join(c["source"])
        if c["cell_type"] != "code" or "eval: false" in s: continue
        if "nbdev_export()" in s: assert "if write_tracked(): nbdev.nbdev_export()" in s, f"{nb.name}: unconditional export cell:\n{s}"
        if re.search(r"[\"'](\.\./)?images/[^\"']+\.png[\"']", s):     # a figure path under nbs/images/ in code
            assert "write_tracked()" in s, f"{nb.name}: writes a figure under nbs/images/ unasked (gate it on write_tracked()):\n{s}"


def test_packaging_metadata_agrees():
    "settings.ini (what setup.py reads) and pyproject.toml say the same Python; no deprecated nbdev keys."
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'requires-python=">={CFG["DEFAULT"]["min_python"]}"' in pyproject, "pyproject.toml requires-python != settings.ini min_python"
    assert CFG["DEFAULT"]["python_versions"].split()[0] == CFG["DEFAULT"]["min_python"]
    assert 'license = "Apache-2.0"' in pyproject and "cell_number" not in CFG["DEFAULT"]
    assert (ROOT / "MANIFEST.in").read_text().count("include settings.ini") == 1, "the sdist must carry settings.ini (setup.py reads it)"


def test_patched_property_keeps_the_module_name():
    "fastcore < 1.9.2 rebinds `spurnb.data.fingerprint` to None after `@patch(as_prop=True) def fingerprint(self: GroupDataset)`."
    import fastcore, spurnb.core, spurnb.data
    assert spurnb.data.fingerprint is spurnb.core.fingerprint, f"fastcore {fastcore.__version__}: settings.ini requires >= 1.9.2"
