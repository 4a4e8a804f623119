"""Pipeline specs, the stage driver and run directories."""

from meow.pipeline.driver import run_pipeline
from meow.pipeline.rundir import RunDir
from meow.pipeline.spec import PipelineSpec, SpecError, load_spec, load_spec_file

__all__ = ["PipelineSpec", "RunDir", "SpecError", "load_spec", "load_spec_file", "run_pipeline"]
