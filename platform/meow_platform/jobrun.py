"""`python -m meow_platform.jobrun --run-dir DIR`: what every platform job runs (Ray job or RayJob).

Decodes the tenant's spec from the environment into a private file and hands it to the MEOW
driver (`python -m meow.pipeline run SPEC --run-dir DIR`) in this same process.
"""

from __future__ import annotations

import argparse
import base64
import os
import tempfile

from meow.cli.unlearn import pipeline_main
from meow_platform.backends.base import SPEC_ENV


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m meow_platform.jobrun")
    parser.add_argument("--run-dir", required=True)
    args = parser.parse_args()
    spec = base64.b64decode(os.environ[SPEC_ENV], validate=True).decode()
    fd, path = tempfile.mkstemp(prefix="meow-spec-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(spec)
        pipeline_main(["run", path, "--run-dir", args.run_dir], prog_name="meow.pipeline")
    finally:
        os.unlink(path)


if __name__ == "__main__":
    main()
