"""`python -m meow.pipeline run SPEC --run-dir DIR`: the entrypoint Ray jobs and RayJobs run."""

from meow.cli.unlearn import pipeline_main

if __name__ == "__main__":
    pipeline_main()
