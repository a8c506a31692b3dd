__all__ = []

# %% ../../nbs/14_baselines.ipynb #fac1990f
from .base import *
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #33db2d5f
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #34b5946e
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #46648f06
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *

# %% ../../nbs/14_baselines.ipynb #0f570d95
from .base import *
from .base import Task, resolve_templates, _Tuned   # names its callers import from here, not in base's __all__
from .spurnb import *
from .baselines import *