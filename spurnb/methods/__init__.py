"""The methods: the interface and registry (`base`), the paper's method (`spurnb`) and the baselines (`baselines`).
Importing the package registers them all, as timm's `models/__init__.py` does. Written by hand (nbs/14_baselines.ipynb shows it)."""
from spurnb.methods.base import *
from spurnb.methods.base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from spurnb.methods.spurnb import *
from spurnb.methods.baselines import *
