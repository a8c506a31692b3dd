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


def test_docs_tooling_is_not_in_the_user_package():
    "The docs builder is developer tooling (tools/docs.py + docs/conf.py), not a module or console script every `pip install spurnb` gets."
    assert (ROOT / "tools/docs.py").is_file() and (ROOT / "docs/conf.py").is_file(), "the docs build lives in tools/docs.py, its Sphinx config in docs/conf.py"
    scripts = [e.split("=")[0] for e in CFG["DEFAULT"]["console_scripts"].split()]
    assert not [s for s in scripts if "doc" in s], f"settings.ini console_scripts ships a docs builder to users: {scripts}"
    dev_only = {"nbdev", "nbconvert", "execnb", "sphinx", "myst_nb", "myst_parser", "yaml", "playwright"}
    for py in sorted((ROOT / "spurnb").glob("*.py")):
        mods = {m.split(".")[0] for m in re.findall(r"^\s*(?:from|import)\s+([\w.]+)", py.read_text(), re.M)}
        assert not mods & dev_only, f"{py.relative_to(ROOT)} imports developer tooling {sorted(mods & dev_only)}: users do not install it (settings.ini requirements)"
    assert not list((ROOT / "docs").rglob("*.html")), "docs/ holds the site's sources; the built HTML goes to build/docs/ (make docs), not into git"


def test_no_progress_bar_glyphs_saved_in_notebooks():
    "Progress bars are off in saved outputs: a bar's glyphs (█) in a notebook end up on the docs site as noise."
    bad = []
    for nb in sorted((ROOT / "nbs").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb.parts: continue
        for i, c in enumerate(json.loads(nb.read_text())["cells"]):
            if "█" in json.dumps(c.get("outputs", []), ensure_ascii=False): bad.append(f"{nb.relative_to(ROOT)} cell {i}")
    assert not bad, "progress-bar glyphs saved in outputs (re-run with progress off, or clear those lines): " + ", ".join(bad)


def _public_api():
    "Every public function, class, method and property the modules export (`__all__`), with its docstring as `show_doc` reads it."
    import inspect, pkgutil, spurnb
    for m in pkgutil.iter_modules(spurnb.__path__):
        if m.name.startswith("_"): continue
        mod = importlib.import_module(f"spurnb.{m.name}")
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if getattr(obj, "__module__", None) != mod.__name__: continue
            if inspect.isfunction(obj): yield f"{mod.__name__}.{name}", obj.__doc__
            elif inspect.isclass(obj):
                yield f"{mod.__name__}.{name}", obj.__doc__
                for k, v in vars(obj).items():
                    if k.startswith("_") and k not in ("__getitem__", "__call__", "__iter__"): continue
                    f = v.fget if isinstance(v, property) else getattr(v, "__func__", v)
                    if inspect.isfunction(f): yield f"{mod.__name__}.{name}.{k}", inspect.getdoc(getattr(obj, k)) if not isinstance(v, property) else v.__doc__


def test_every_public_function_and_method_has_a_docstring():
    "The docs show each entry's docstring; without one, show_doc prints 'Call self as a function.' (a method inherits its base's docstring)."
    missing = [name for name, doc in _public_api() if not (doc or "").strip()]
    assert not missing, f"{len(missing)} public names have no docstring (add one in the notebook that defines each): {missing}"
