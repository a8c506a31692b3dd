#!/usr/bin/env bash
# Build both release artifacts (sdist and wheel) into dist/ and check them with `twine check --strict`.
# Then (not done here) upload with `twine upload dist/*` once the version in settings.ini is bumped and CHANGELOG.md says what changed.
#   tools/release.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if ! git diff --quiet HEAD -- nbs spurnb settings.ini; then echo "uncommitted changes in nbs/, spurnb/ or settings.ini: commit first" >&2; exit 1; fi
make -s check-sync
version=$(sed -n 's/^version *= *//p' settings.ini)
grep -q "^## $version" CHANGELOG.md || { echo "CHANGELOG.md has no '## $version' section" >&2; exit 1; }
rm -rf dist build/lib* build/bdist.* && "$PY" -m build --outdir dist .        # the wheel is built from the sdist, as pip would
"$PY" -m twine check --strict dist/*
ls -l dist
