"""`python -m meow_platform.jobrun --run-dir DIR`: what every platform job runs (Ray job or RayJob).

Decodes the tenant's spec from the environment, checks it with everything it names
(`meow.pipeline.validate`, what the submission was checked with; the data may have changed since)
and runs it with the MEOW driver (`meow.pipeline.run_pipeline`) in this same process. Bad input is
one `Error: ...` line, the run recorded failed with it as the reason, and exit code 2.

The run's status.json always ends in a final state: SIGTERM (what Ray's `stop_job` and a pod's
deletion send first) unwinds the running stage as an exception (it records itself failed, Ray is
shut down): ours, `Terminated`, until `ray.init` installs Ray's own, which exits with the signal's
number. Any way out of the driver other than success records the run `failed` with a reason. A
SIGKILL leaves no chance: the scheduler records the end then, from Ray's verdict.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import signal
import sys

from meow.pipeline.driver import run_pipeline
from meow.pipeline.rundir import RunDir
from meow.pipeline.validate import INPUT_ERRORS, check_text, one_line
from meow_platform.backends.base import SPEC_ENV


class Terminated(BaseException):
    """The driver was asked to stop by a signal (a BaseException, like KeyboardInterrupt: no
    `except Exception` in a stage swallows it)."""


def _terminate(signum: int, _frame) -> None:
    signal.signal(signum, signal.SIG_IGN)  # a second one must not cut the clean-up short
    raise Terminated(signal.Signals(signum).name)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m meow_platform.jobrun")
    parser.add_argument("--run-dir", required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    run = args.run_dir
    try:
        run_driver(run)
    except INPUT_ERRORS as e:
        print(f"Error: {one_line(e)}", file=sys.stderr)
        RunDir(run).end_abnormally(type(e).__name__, one_line(e))
        raise SystemExit(2) from None
    except SystemExit as e:
        if e.code == signal.SIGTERM:  # Ray's driver handler: sys.exit(signum)
            RunDir(run).end_abnormally("Terminated", "terminated by SIGTERM", replace=True)
        elif e.code not in (0, None):
            RunDir(run).end_abnormally("SystemExit", f"exit code {e.code}")
        raise
    except Terminated as e:
        RunDir(run).end_abnormally("Terminated", f"terminated by {e}", replace=True)
        raise SystemExit(128 + signal.SIGTERM) from None
    except BaseException as e:
        RunDir(run).end_abnormally(type(e).__name__, f"{type(e).__name__} (the traceback is in the job's logs)")
        raise


def run_driver(run_dir: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    text = base64.b64decode(os.environ[SPEC_ENV], validate=True).decode()
    spec = check_text(text, source="spec", run_dir=run_dir).spec
    print(run_pipeline(spec, run_dir).location)


if __name__ == "__main__":
    main()
