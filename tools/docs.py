#!/usr/bin/env python
"""Build README.md and the documentation site from the notebooks: developer tooling, not part of the `spurnb` package.

    python tools/docs.py               # README.md + the HTML site in build/docs/ (what `make docs` runs)
    python tools/docs.py --readme-only # README.md from nbs/index.ipynb only (what `make readme` runs)

The notebooks go through nbdev's own processing first (`nbdev.serve.proc_nbs`: the `show_doc`
rendering, `#| hide`, `#| echo: false`, `#| output: asis` and the front matter that `nbdev_docs`
hands to Quarto). The processed notebooks are then translated from Quarto's conventions into plain
MyST notebooks, named as nbdev names its pages (`15_train.ipynb` -> `train.html`, from the
`output-file` nbdev writes), with nbdev's anchors (`#groupdataset.__getitem__`) kept, and Sphinx
renders them with MyST-NB and the Furo theme (configuration in `docs/conf.py`). Links that nbdev
wrote against the deployed site (`https://spurnb.github.io/spurnb/...`) become relative, so the site
works from any folder as well as on the deployed URL. Notebooks are discovered; the sidebar groups their pages into
the sections of `SECTIONS` (foundations, the method, baselines, detection, ...), and a page without a section stops the build.

Where Quarto is installed, `nbdev_docs` still builds nbdev's own site from the same notebooks.
"""
from __future__ import annotations
import argparse, copy, os, re, shutil, subprocess, sys, time
from pathlib import Path
import yaml, nbformat

_directive = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*)$")
_quarto_attr = re.compile(r"\)\{[^}]*\}")            # [source](url){target="_blank" style=...}
_heading = re.compile(r"^(#{1,6})\s+(.*?)\s*$", re.M)


def front_matter(src: str) -> dict:
    "Title, description and output file from a Quarto front-matter block (`---` ... `---`)."
    return yaml.safe_load(src.strip().strip("-")) or {}


def page_name(proc_nb: Path, proc: Path) -> Path:
    "Where nbdev puts a notebook's page (its `output-file`, else the name without the number prefix), relative to the site root."
    nb = nbformat.read(proc_nb, as_version=4)
    rel = proc_nb.relative_to(proc)
    fm = front_matter(nb.cells[0].source) if nb.cells and nb.cells[0].cell_type == "raw" else {}
    name = fm.get("output-file") or re.sub(r"^\d+[a-zA-Z0-9]*_", "", rel.name.lower())
    return rel.with_name(Path(name).stem + ".html")


def quarto_to_plain(nb) -> nbformat.NotebookNode:
    "A processed notebook in plain Markdown/code cells: front matter → H1 + summary, `output: asis` → Markdown, `echo: false` → a `remove-input` tag."
    nb, cells = copy.deepcopy(nb), []
    for c in nb.cells:
        src = c.source
        if c.cell_type == "raw" and src.strip().startswith("---"):
            fm = front_matter(src)
            md = f"# {fm.get('title', '')}\n\n" + (f"> {fm['description']}\n" if fm.get("description") else "")
            cells.append(nbformat.v4.new_markdown_cell(md)); continue
        if c.cell_type == "code":
            lines = src.splitlines()
            opts = dict(m.groups() for m in map(_directive.match, lines) if m)
            code = "\n".join(l for l in lines if not _directive.match(l)).strip()
            if opts.get("output") == "asis":
                md = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in c.get("outputs", []))
                cells.append(nbformat.v4.new_markdown_cell(_quarto_attr.sub(")", md), metadata={"api_entry": code})); continue
            if opts.get("echo") == "false":
                c.metadata["hide_input"] = True
                c.metadata.setdefault("tags", []).append("remove-input")
            c.source = code
            if not code and not c.get("outputs"): continue
        if c.cell_type == "markdown": c.source = _quarto_attr.sub(")", src)
        cells.append(c)
    for i, c in enumerate(cells): c["id"] = f"cell-{i}"          # stable ids: a rebuild changes only what changed
    nb.cells = cells
    nb.metadata.pop("widgets", None)                              # empty widget state would pull ipywidgets' JS from a CDN
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}   # nbdev_clean strips these
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    return nb


def _escape_md(s: str) -> str: return re.sub(r"([_*])", r"\\\1", s)


def _symbol(code: str, page: str):
    "The object a `show_doc(X)` cell documents, found through nbdev's index of the library (`_modidx`): X on this page, else anywhere."
    import importlib
    m = re.match(r"\s*show_doc\(\s*([\w.]+)", code)
    if not m: return None
    name, lib = m.group(1), importlib.import_module(_lib_name() + "._modidx").d["syms"]
    hits = sorted(((loc.split("#")[0] != page, full) for mod in lib.values() for full, (loc, _) in mod.items() if full.endswith("." + name)))
    for _, full in hits:
        parts = full.split(".")
        for i in range(len(parts) - 1, 0, -1):
            try: obj = importlib.import_module(".".join(parts[:i]))
            except ImportError: continue
            try:
                for a in parts[i:]: obj = getattr(obj, a)
                return obj
            except AttributeError: break
    return None


def _lib_name() -> str:
    from nbdev.config import get_config
    return get_config().lib_name


def param_table(obj) -> str:
    "The parameter table nbdev's Quarto pages show (type, default, details from fastcore's docments), or '' when no parameter is documented."
    import inspect
    from fastcore.docments import docments
    from fastcore.script import Param
    try: dm = docments(obj, full=True)
    except Exception: return ""
    dm.pop("self", None)
    for v in dm.values():           # a command's `Param(help, type)` option: its type in Type, its help in Details (not the help as a type)
        a = v.get("anno")
        if isinstance(a, Param):
            v["anno"] = a.type if a.type is not None else (bool if a.action in ("store_true", "store_false") else str)
            v["docment"] = v.get("docment") or re.sub(r" \(default: .*\)$", "", a.help or "")
    if not any(v.get("docment") for v in dm.values()): return ""
    empty = inspect.Parameter.empty
    def cell(x):
        if x is empty: return ""
        x = x if isinstance(x, str) else getattr(x, "__name__", repr(x))
        return str(x).replace("|", "\\|").replace("\n", " ")
    def anno(v): return "" if v.get("anno") is type(None) else cell(v.get("anno", empty))    # NoneType: inferred from `=None`, not written
    def flags(t): return re.sub(r"(?<![\w`])(--[\w-]+)", r"`\1`", t)     # `--opt`, not Markdown's en dash
    rows = ["|  | **Type** | **Default** | **Details** |", "| -- | -- | -- | -- |"]
    for k, v in dm.items():
        if k == "return": continue
        d = v.get("default", empty)
        rows.append(f"| {cell(k)} | {anno(v)} | {'' if d is empty else cell(repr(d) if isinstance(d, str) else d)} | {flags(cell(v.get('docment') or ''))} |")
    r = dm.get("return")
    if r and (r.get("docment") or r.get("anno", empty) is not empty):
        rows.append(f"| **Returns** | {anno(r)} |  | {cell(r.get('docment') or '')} |")
    return "\n".join(rows)


def api_entry(md: str, obj=None) -> str:
    "One `show_doc` entry for MyST: nbdev's anchor (`name.lower()`) kept, dunder names not read as bold, the source link as a small link, the parameter table under the docstring."
    md = re.sub(r"^\s*---\s*\n", "", md)                        # Quarto's rule above each entry: CSS draws it (a docutils transition may not start a section)
    src = re.search(r"^\[source\]\((\S+?)\)\s*$", md, re.M)
    md = re.sub(r"^\[source\]\(\S+?\)\s*$\n?", "", md, flags=re.M)
    def head(m):
        name = m.group(2)
        link = f' <a class="srclink reference external" href="{src.group(1)}">source</a>' if src else ""
        return f'<a class="api-anchor" id="{name.lower()}"></a>\n\n{m.group(1)} {_escape_md(name)}\n\n{link.strip()}\n' if "`" not in name else m.group(0)
    md = _heading.sub(head, md, count=1)
    tbl = param_table(obj) if obj is not None else ""
    if tbl: md = md.rstrip() + "\n\n" + tbl + "\n"
    return md


def rewrite_links(md: str, host: str, depth: int, pages: dict[str, str], anchors: dict[str, set] | None = None) -> str:
    """Links at the deployed site (`{host}/x.html#a`, as nbdev's doclinks write them) and to notebooks (`15_train.ipynb`) become
    relative links to the built pages. A doclink to a symbol that has no API entry of its own (a private helper nbdev indexes
    but no `show_doc` shows) would be a dead anchor: it is unlinked, its text kept."""
    up, host = "../" * depth, re.escape(host.rstrip("/"))
    def doclink(m):
        text, path, frag = m.group(1), m.group(2), m.group(3)
        if anchors is not None and frag and path in anchors and frag[1:] not in anchors[path]: return text
        return f"[{text}]({up}{path}{frag or ''})"
    md = re.sub(r"\[((?:[^\[\]]|\[[^\]]*\])*)\]\(" + host + r"/([^)#\s]*)(#[^)\s]*)?\)", doclink, md)
    md = re.sub(host + r"/([^)\s\"'>]*)", lambda m: up + m.group(1), md)     # bare URLs and HTML outputs
    def nb_link(m):
        target, anchor = m.group(1), m.group(2) or ""
        return f"]({pages.get(os.path.normpath(target), target)}{anchor})"
    return re.sub(r"\]\(([^):#\s]+\.ipynb)(#[^)\s]*)?\)", nb_link, md)


def stage(proc: Path, src: Path, host: str) -> list[Path]:
    "Write the MyST sources of every processed notebook into `src`; returns the pages (relative `.ipynb` paths, index first)."
    if src.exists(): shutil.rmtree(src)
    src.mkdir(parents=True)
    nbs = sorted(p for p in proc.rglob("*.ipynb") if not any(part.startswith((".", "_")) for part in p.relative_to(proc).parts))
    names = {p: page_name(p, proc) for p in nbs}
    seen = {}
    for p, n in names.items():
        if n in seen: sys.exit(f"tools/docs.py: {p.relative_to(proc)} and {seen[n].relative_to(proc)} both become {n}: rename one (nbdev drops the number prefix)")
        seen[n] = p
    plain, anchors = {}, {}
    for p in nbs:                                                # pass 1: API entries, and the anchors they define
        page = names[p]
        nb = quarto_to_plain(nbformat.read(p, as_version=4))
        for c in nb.cells:
            if c.cell_type == "markdown" and c.metadata.get("api_entry"):
                c.source = api_entry(c.source, _symbol(c.metadata.pop("api_entry"), page.as_posix()))
                anchors.setdefault(page.as_posix(), set()).update(re.findall(r'class="api-anchor" id="([^"]+)"', c.source))
        plain[p] = nb
    out = []                                                     # pages in notebook order: index, the library (00_core, 01_data, ...), sub-folders
    nbs.sort(key=lambda q: (q.name != "index.ipynb", len(q.relative_to(proc).parts) > 1, str(q.relative_to(proc))))
    for p in nbs:                                                # pass 2: links
        page, nb = names[p], plain[p]
        depth = len(page.parts) - 1
        # notebook links are written relative to the notebook; map them to its page, relative to the page
        pages = {os.path.normpath(os.path.relpath(q, p.parent)): os.path.relpath(proc / names[q], (proc / page).parent) for q in nbs}
        for c in nb.cells:
            if c.cell_type == "markdown": c.source = rewrite_links(c.source, host, depth, pages, anchors)
            elif c.cell_type == "code":
                for o in c.get("outputs", []):
                    for k in ("text/markdown", "text/html"):
                        if k in o.get("data", {}): o["data"][k] = rewrite_links("".join(o["data"][k]), host, depth, pages, anchors)
        dst = src / page.with_suffix(".ipynb"); dst.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dst)
        out.append(page.with_suffix(".ipynb"))
    for d in proc.rglob("images"):                               # figures the notebooks link to, next to the pages that link them
        if d.is_dir(): shutil.copytree(d, src / d.relative_to(proc), dirs_exist_ok=True)
    _toctree(src, out)
    return out


# The sidebar's sections, in order, by page (nbdev's page names: the notebook's name without its number). The library's
# pages follow the package's floors (tests/test_project.py FLOORS); the studies are listed in reading order.
SECTIONS = {
    "Start here": ["tutorials/waterbirds_study"],
    "Foundations": ["core", "data", "groups", "eval", "distributed", "models", "benchmark", "losses", "cache", "feed",
                    "pretrain", "attribution"],
    "The method": ["methods", "spurnb", "train"],
    "Baselines": ["baselines"],
    "Detection": ["detect", "tutorials/label_free"],
    "Application": ["experiment", "study", "front", "cli"],
    "Studies": ["tutorials/paper_regime", "tutorials/replication", "tutorials/mechanism", "speed"],
}


def sidebar(pages: list[Path]) -> dict:
    "`{section: [page, ...]}` for the pages (index excluded), in `SECTIONS`' order; a page without a section stops the build."
    have = {p.with_suffix("").as_posix() for p in pages if p.as_posix() != "index.ipynb"}
    listed = {q for qs in SECTIONS.values() for q in qs}
    missing = sorted(have - listed)
    if missing: sys.exit(f"tools/docs.py: page(s) {missing} have no sidebar section: add them to SECTIONS")
    return {sec: [q for q in qs if q in have] for sec, qs in SECTIONS.items() if any(q in have for q in qs)}


def _toctree(src: Path, pages: list[Path]):
    "The sidebar: hidden toctrees on the index page, one per section of `SECTIONS`."
    idx = src / "index.ipynb"
    nb = nbformat.read(idx, as_version=4)
    md = "\n\n".join("```{toctree}\n:hidden:\n:caption: " + sec + "\n\n" + "\n".join(docs) + "\n```" for sec, docs in sidebar(pages).items())
    nb.cells.append(nbformat.v4.new_markdown_cell(md))
    nbformat.write(nb, idx)


def build_readme(proc: Path, cfg) -> Path:
    "Write README.md from the processed `index.ipynb` (Markdown, via nbconvert)."
    from nbconvert import MarkdownExporter
    from spurnb.core import atomic_write
    nb = quarto_to_plain(nbformat.read(proc / cfg.readme_nb, as_version=4))
    for c in nb.cells:
        if c.metadata.get("hide_input"): c.source = ""
    md, _ = MarkdownExporter(exclude_input_prompt=True).from_notebook_node(nb)
    md = re.sub(r"```python\s*```\n*", "", md)                 # an `echo: false` cell leaves an empty code block: only its output shows
    md = re.sub(r"\n{3,}", "\n\n", md).strip() + "\n"
    md = re.sub(r"\]\(([^):#]+\.ipynb)\)", lambda m: f"]({cfg.nbs_path.relative_to(cfg.config_path)}/{m.group(1)})", md)  # links work from the repo root
    out = cfg.config_path / "README.md"
    with atomic_write(out, "w") as f: f.write(md)
    return out


def build(readme_only: bool = False, out: str = "build/docs", quiet: bool = True, reuse_proc: bool = False) -> Path:
    "Process `nbs/` with nbdev, write README.md and (unless `readme_only`) the HTML site in `out` (relative to the repo root)."
    from nbdev.config import get_config
    from nbdev.serve import proc_nbs
    from fastcore.script import Param
    Param.__repr__ = lambda self: getattr(self.type, "__name__", None) or ("bool" if self.action else "str")   # signatures: `dataset:str`, not the help text
    cfg = get_config()
    t0 = time.time()
    proc = cfg.config_path / "_proc" if reuse_proc else proc_nbs(force=True, n_workers=0, **({"file_glob": cfg.readme_nb} if readme_only else {}))
    t1 = time.time()
    build_readme(proc, cfg)
    if readme_only: return cfg.config_path / "README.md"
    root = cfg.config_path
    src = root / "build" / "docs-src"
    pages = stage(proc, src, f"{cfg.doc_host.rstrip('/')}{cfg.doc_baseurl.rstrip('/')}")
    dst = root / out
    if dst.exists(): shutil.rmtree(dst)                          # no page of a renamed or deleted notebook survives
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(root / cfg.doc_path), "-d", str(root / "build" / "docs-doctrees"),
           "-W", "--keep-going", "-j", "1", *(["-q"] if quiet else []), str(src), str(dst)]
    r = subprocess.run(cmd, cwd=root)
    if r.returncode: sys.exit(f"tools/docs.py: sphinx-build failed (exit {r.returncode}); the warnings above name the page and line. Command: {' '.join(cmd)}")
    print(f"tools/docs.py: {len(pages)} pages in {dst} (nbdev processing {t1 - t0:.0f} s, sphinx {time.time() - t1:.0f} s)")
    return dst


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme-only", action="store_true", help="only regenerate README.md from nbs/index.ipynb")
    ap.add_argument("--out", default="build/docs", help="folder for the HTML site, relative to the repository root")
    ap.add_argument("--verbose", action="store_true", help="show sphinx-build's progress")
    ap.add_argument("--reuse-proc", action="store_true", help="skip nbdev's processing and reuse _proc/ (while working on the site itself)")
    a = ap.parse_args()
    build(a.readme_only, a.out, quiet=not a.verbose, reuse_proc=a.reuse_proc)
