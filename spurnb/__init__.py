__version__ = "0.0.1"

# Weight sources register themselves when their module is imported (timm-style): `spurnb.pretrain` adds
# load_clip(..., pretrained="benchmark"). spurnb.models itself never imports the pretraining code.
from . import pretrain as _pretrain  # noqa: E402,F401
