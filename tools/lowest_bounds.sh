#!/usr/bin/env bash
# The lowest-bounds check: every user requirement of settings.ini (`name>=X`) pinned to its lower bound X, then the
# artifact test (tests/test_artifacts.py: build sdist + wheel, fresh venv, spurnb_train --help, a one-epoch run on the
# built-in benchmark, imports of every public module, all from outside the clone) in that environment.
#   tools/lowest_bounds.sh            # ~10 min on 2 cores; downloads the old wheels the machine lacks from PyPI (~4 GB with torch's CUDA libraries)
#   KEEP=1 tools/lowest_bounds.sh     # keep the environment and print where it is
# The pinned toolchain (.ci/requirements.txt) is what `make test` checks; this script checks the other end of the ranges.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
work=$(mktemp -d); [ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
"$PY" - "$work/lowest.txt" <<'PYEOF'
import configparser, re, sys
cfg = configparser.ConfigParser(delimiters=["="]); cfg.read("settings.ini")
pins = []
for req in cfg["DEFAULT"]["requirements"].split():
    m = re.match(r"^([A-Za-z0-9_.\-]+)\S*?>=([0-9][^,]*)", req)
    if not m: sys.exit(f"settings.ini requirement {req!r} has no lower bound (name>=X): every requirement needs one")
    # torch and torchvision by exact string (===): "2.13.0" is PyPI's build, not a local "2.13.0+cpu" wheel, with which
    # PyPI's torchvision does not load ("operator torchvision::nms does not exist")
    pins.append(f"{m.group(1)}{'===' if m.group(1) in ('torch', 'torchvision') else '=='}{m.group(2)}")
open(sys.argv[1], "w").write("\n".join(pins) + "\n")
print("lowest bounds:", " ".join(pins))
PYEOF
SPURNB_ARTIFACT_KEEP="${KEEP:-}" SPURNB_ARTIFACT_CONSTRAINTS="$work/lowest.txt" "$PY" -m pytest -q -s -p no:cacheprovider --basetemp "$work/t" tests/test_artifacts.py
[ -z "${KEEP:-}" ] || echo "environment kept in $work/t"
