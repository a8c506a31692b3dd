"""Execute notebooks in place as `nbdev_test` does, keeping their outputs: `python tools/run_nb.py nbs/X.ipynb [--flags slow]`.

Cells marked `#| eval: false` never run, and cells marked with a test flag (`#| slow`, `#| cuda`) run only when the flag
is given — unlike `jupyter nbconvert --execute`, which runs every cell, the full-size `eval: false` ones included.
`IN_TEST` is not set, so `spurnb.core.in_test()` is False: the notebook runs at full size."""
import argparse, os, time
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from nbdev.config import get_config

def directives(source: str) -> dict:
    "The `#| name: value` directives at the top of a cell, as {name: value}."
    out = {}
    for line in source.splitlines():
        if not line.startswith("#|"): break
        name, _, value = line[2:].strip().partition(" ")
        out[name.rstrip(":")] = value.strip()
    return out

def run_nb(path, flags=()):
    "Run notebook `path` from its own folder, skipping `eval: false` cells and cells whose test flags are not in `flags`; write it back."
    path = Path(path).resolve(); nb = read_nb(path)
    skip = set(get_config().get("tst_flags", "").split()) - set(flags)
    def preproc(cell):
        if cell.cell_type != "code": return True
        d = directives(cell.source)
        if d.get("eval", "").lower() == "false" or bool(skip & d.keys()): return True
        cell.outputs = []           # execnb keeps a cell's old outputs when it prints nothing now: a fixed warning would stay
        return False
    cwd, t0 = os.getcwd(), time.time(); os.chdir(path.parent)
    try: CaptureShell(path).run_all(nb, exc_stop=True, preproc=preproc)
    finally: os.chdir(cwd)
    write_nb(nb, path); print(f"{path.name}: ran in {time.time() - t0:.0f} s")

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__); p.add_argument("notebooks", nargs="+"); p.add_argument("--flags", nargs="*", default=[])
    a = p.parse_args()
    for nb in a.notebooks: run_nb(nb, a.flags)
