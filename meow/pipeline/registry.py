"""Everything a spec may name, in one place (the control plane checks tenant specs against these)."""

from meow.engines import ENGINES
from meow.pipeline.spec import STAGE_ORDER
from meow.train.methods import METHODS

__all__ = ["ENGINES", "METHODS", "STAGE_ORDER"]
