__version__ = "0.0.1"

# Weight sources register themselves when their module is imported (timm-style): `spurnb.pretrain` adds
# load_clip(..., pretrained="benchmark"). load_clip imports it on first use of a tag it does not know yet, so that
# `import spurnb` (and `spurnb_train --help`) does not pay for torch and open_clip; spurnb.models never imports it at module level.
