"""`python -m meow.pipeline run SPEC [--run-dir DIR]`: check a spec, then run it (`run_pipeline`).

What a Ray job can run with nothing but this package (the platform's jobs go through
`meow_platform.jobrun`, which calls the same functions). Bad input is one `Error: ...` line on
stderr and exit code 2, as with `meow unlearn`. `python -m meow.pipeline schema` prints the JSON
schema of specs (published as pipelines/schema.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from meow.pipeline.driver import default_run_dir, run_pipeline
from meow.pipeline.spec import PipelineSpec
from meow.pipeline.validate import INPUT_ERRORS, check_file, one_line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m meow.pipeline")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="check SPEC and run every stage; a rerun resumes")
    run.add_argument("spec", metavar="SPEC")
    run.add_argument("--run-dir", help="run directory (local or s3://); default runs/<spec name>")
    run.add_argument("--forget", help="forget set: a TOFU split name or a file/URI (overrides the spec)")
    run.add_argument("--force", action="store_true", help="recompute even if finished with the same inputs")
    commands.add_parser("schema", help="print the JSON schema of pipeline specs")
    args = parser.parse_args(argv)
    if args.command == "schema":
        print(json.dumps(PipelineSpec.model_json_schema(), indent=2))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        spec = check_file(args.spec, args.forget, args.run_dir).spec
        location = run_pipeline(spec, args.run_dir or default_run_dir(spec), force=args.force).location
    except INPUT_ERRORS as e:
        print(f"Error: {one_line(e)}", file=sys.stderr)
        raise SystemExit(2) from None
    # Last line: where everything is (scripts read it).
    print(location)


if __name__ == "__main__":
    main()
