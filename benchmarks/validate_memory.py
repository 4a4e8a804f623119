"""How long validating a forget set takes and how much memory it holds, by the set's size.

    .venv/bin/python benchmarks/validate_memory.py                   # 10 MB, 200 MB and 1 GB (~1.2 GB of disk)
    .venv/bin/python benchmarks/validate_memory.py --sizes 1MB,4MB   # smaller (the test)

Each size is written once into a temporary directory as TOFU-like JSON Lines (unique questions,
answers of 130-900 characters), then validated in a fresh process exactly as `meow validate`
does it (`meow.pipeline.validate.check_text` on a spec naming the file; every record streamed and
checked). The parent takes the child's wall and CPU time (`wait4`), the child reports its peak RSS
(VmHWM), so the numbers include the interpreter and the imports. Prints a table and, last, one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_SIZES = "10MB,200MB,1GB"
UNITS = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
WORDS = (
    "the author wrote novels about memory and loss in a small coastal town where her father worked as a "
    "cartographer and her mother taught music at the conservatory before the war changed everything"
).split()

# The child reports its own peak RSS (VmHWM of its address space): wait4's ru_maxrss also counts
# the parent's pages at the fork before exec, which under pytest are hundreds of MB.
CHILD = """
import json, sys, time
from meow.pipeline.validate import check_text
started = time.perf_counter()
found = check_text(sys.argv[1], "bench.yaml")
seconds = time.perf_counter() - started
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"records": found.forget_records, "seconds": seconds, "peak_rss_kb": hwm}))
"""


def parse_size(text: str) -> int:
    text = text.strip().upper()
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def answer(i: int) -> str:
    """A deterministic answer of 130-900 characters (no two questions alike; answers may repeat)."""
    words = 25 + (i * 7919) % 125
    start = (i * 31) % len(WORDS)
    return " ".join(WORDS[(start + k) % len(WORDS)] for k in range(words)).capitalize() + "."


def write_forget_set(path: Path, size: int) -> int:
    """JSON Lines of at least `size` bytes; returns the number of records."""
    written = records = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size:
            lines = []
            for i in range(records, records + 1000):
                row = {"question": f"What did author {i} write about in book {i % 97}?", "answer": answer(i)}
                lines.append(json.dumps(row) + "\n")
            block = "".join(lines)
            f.write(block)
            written += len(block.encode())
            records += len(lines)
    return records


def validate(path: Path) -> dict[str, float]:
    """Validate `path` in a fresh process; its wall time, CPU time and peak RSS."""
    spec = f"name: bench\nforget:\n  source: {path}\n  max_records: 1000000000\n"
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", CHILD, spec], stdout=subprocess.PIPE, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"validation of {path} failed (exit {os.waitstatus_to_exitcode(status)})")
    reported = json.loads(out.strip().splitlines()[-1])
    return {
        "records": reported["records"],
        "validate_seconds": round(reported["seconds"], 2),
        "process_seconds": round(wall, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(reported["peak_rss_kb"] / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"comma-separated sizes (default {DEFAULT_SIZES})")
    parser.add_argument("--dir", help="where to write the forget sets (default: a temporary directory)")
    args = parser.parse_args()
    sizes = [(label.strip(), parse_size(label)) for label in args.sizes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="validate-memory-") as tmp:
        for label, size in sizes:
            path = Path(tmp) / f"forget-{label}.jsonl"
            write_forget_set(path, size)
            results[label] = {"file_mb": round(path.stat().st_size / (1 << 20), 1), **validate(path)}
            path.unlink()
    print(f"{'size':>8} {'file MB':>9} {'records':>10} {'validate s':>11} {'process s':>10} {'CPU s':>7} {'peak RSS MB':>12}")
    for label, r in results.items():
        print(
            f"{label:>8} {r['file_mb']:>9} {r['records']:>10} {r['validate_seconds']:>11} "
            f"{r['process_seconds']:>10} {r['cpu_seconds']:>7} {r['peak_rss_mb']:>12}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
