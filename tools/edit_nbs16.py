"One-off edit (issue 16): kernelspec in every notebook; notebooks rewrite tracked files only when asked (SPURNB_WRITE=1)."
import json, uuid, glob
KS = {"display_name": "python3", "language": "python", "name": "python3"}
EXPORT = '#| hide\nimport nbdev\nfrom spurnb.core import write_tracked\nif write_tracked(): nbdev.nbdev_export()   # rewrites spurnb/*.py from this notebook only when asked: SPURNB_WRITE=1 (or run `nbdev_export`)'
def code(s): return dict(cell_type='code', execution_count=None, metadata={}, outputs=[], source=s.splitlines(True), id=uuid.uuid4().hex[:8])
def md(s): return dict(cell_type='markdown', metadata={}, source=s.splitlines(True), id=uuid.uuid4().hex[:8])
def S(c): return ''.join(c['source'])
def sub(c, old, new, count=1):
    s = S(c); assert old in s, (old, s[:200]); c['source'] = s.replace(old, new, count).splitlines(True)

for p in sorted(glob.glob('nbs/*.ipynb') + glob.glob('nbs/tutorials/*.ipynb')):
    nb = json.load(open(p)); C = nb['cells']
    nb['metadata']['kernelspec'] = KS
    if S(C[-1]) == '#| hide\nimport nbdev; nbdev.nbdev_export()': C[-1]['source'] = EXPORT.splitlines(True)
    if p.endswith('00_core.ipynb'):
        C[-1:-1] = [md("## Files the notebooks do not rewrite unless asked\n\nA reader who runs a notebook top to bottom should leave the repository as it was. Two kinds of tracked files are written from the notebooks: the figures under `nbs/images/` that the docs show, and the modules `spurnb/*.py` (the final cell of each notebook exports them). Both are rewritten only when asked, with `SPURNB_WRITE=1` in the environment (e.g. `SPURNB_WRITE=1 jupyter lab`), and never under the test runner; `nbdev_export` on the command line exports as always."),
                    code('#| export\ndef write_tracked() -> bool:\n    "True when a notebook may rewrite tracked files (figures under `nbs/images/`, `spurnb/*.py`): `SPURNB_WRITE=1` and not under test."\n    return os.environ.get("SPURNB_WRITE") == "1" and not in_test()'),
                    code('_old = {k: os.environ.pop(k, None) for k in ("SPURNB_WRITE", "IN_TEST")}\ntry:\n    test_eq(write_tracked(), False)\n    os.environ["SPURNB_WRITE"] = "1"; test_eq(write_tracked(), True)\n    os.environ["IN_TEST"] = "1"; test_eq(write_tracked(), False)       # never under the test runner\nfinally:\n    for k, v in _old.items():\n        if v is None: os.environ.pop(k, None)\n        else: os.environ[k] = v')]
    if p.endswith('01_data.ipynb'):
        n = 0
        for c in C:
            if 'if path and not in_test(): fig.savefig(path, dpi=100)' in S(c): sub(c, 'if path and not in_test(): fig.savefig(path, dpi=100)', 'if path and write_tracked(): fig.savefig(path, dpi=100)'); n += 1
        assert n == 4, n
        c = next(c for c in C if 'cells below and shown from there' in S(c))
        sub(c, 'The figures are saved to `nbs/images/` by the cells below and shown from there, to keep the notebook small.', 'The figures are shown from `nbs/images/`, to keep the notebook small; the cells below rewrite them only with `SPURNB_WRITE=1`, see `spurnb.core.write_tracked`.')
        imp = next(c for c in C if 'from fastcore.test import' in S(c))
        sub(imp, 'from fastcore.test import *', 'from fastcore.test import *\nfrom spurnb.core import write_tracked')
    if p.endswith('06_attribution.ipynb'):
        c = next(c for c in C if 'figdir = Path("images") if not in_test()' in S(c))
        sub(c, 'figdir = Path("images") if not in_test() else Path(tempfile.mkdtemp())   # the docs\' figures come from a full run',
               'figdir = Path("images") if write_tracked() else Path(tempfile.mkdtemp())   # the docs\' figures: only with SPURNB_WRITE=1')
        imp = next(c for c in C if 'from fastcore.test import' in S(c))
        sub(imp, 'from fastcore.test import *', 'from fastcore.test import *\nfrom spurnb.core import write_tracked')
    if p.endswith('waterbirds_study.ipynb'):
        sub(C[1], 'import json, time, math', 'import json, os, time, math')
        sub(C[1], 'from spurnb.core import cpu_threads, in_test, cache_dir, set_seed', 'from spurnb.core import cpu_threads, in_test, cache_dir, set_seed, write_tracked')
        c = next(c for c in C if 'fig = plot_study(df, "../images/study.png" if not in_test() else None)' in S(c))
        sub(c, 'fig = plot_study(df, "../images/study.png" if not in_test() else None)', 'fig = plot_study(df, "../images/study.png" if write_tracked() else None)')
        sub(c, 'Path("../images").mkdir(exist_ok=True)\n', '')
        c = next(c for c in C if 'None if in_test() else "../images/study_reference.png"' in S(c))
        sub(c, 'None if in_test() else "../images/study_reference.png"', '"../images/study_reference.png" if write_tracked() else None')
        c = next(c for c in C if S(c).startswith('REF = TrainConfig(**PRESETS["reference"])'))
        sub(c, 'REF = TrainConfig(**PRESETS["reference"])', '# From scratch these 12 runs of 300 epochs take about 10 minutes on two cores (566 s in the saved output below). Finished\n# runs are read from the cache instead (a few seconds); SPURNB_FRESH=1 trains them all again. The test suite trains 2 epochs afresh.\nFRESH = os.environ.get("SPURNB_FRESH") == "1" or in_test()\nREF = TrainConfig(**PRESETS["reference"])')
        sub(c, 'task, resume=False, progress=False)', 'task, resume=not FRESH, progress=False)')
        c = next(c for c in C if S(c).startswith('## The reference\'s 300-epoch recipe, run in full'))
        sub(c, '`seconds` is the range of the runs\' wall times on this machine\'s two cores, each from scratch (`resume=False`) with the trunk features already cached by the grid above;',
               '**It takes about 10 minutes** from scratch, so by default the cell reads finished runs from the cache and trains only the missing ones; `SPURNB_FRESH=1` retrains all. `seconds` is the range of the runs\' wall times in this execution — in the saved output, on this machine\'s two cores, each from scratch with the trunk features already cached by the grid above (a run read from the cache shows a fraction of a second);')
    json.dump(nb, open(p, 'w'), indent=1, ensure_ascii=False)
    print(p)
