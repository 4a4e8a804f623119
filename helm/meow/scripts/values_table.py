#!/usr/bin/env python3
"""Write the values table of helm/meow/README.md from the `# --` comments of values.yaml.

helm-docs conventions (helm-docs itself is a Go binary that no package registry here carries): a
`# -- text` comment right above a key documents it, following `#` lines continue the text, and
`# @default -- text` replaces the shown default. A documented key with children is one row (its
whole subtree is the default); an undocumented one is a heading whose children need comments.
Types come from values.schema.json. `--check` changes nothing and exits 1 when README.md is stale
or a key has no comment.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[1]
START, END = "<!-- values-table:start -->", "<!-- values-table:end -->"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")


def documented_keys(text: str) -> tuple[list[tuple[str, str, str | None]], list[str]]:
    """(path, description, default override) of each documented key, and the undocumented leaves."""
    lines = text.splitlines()
    rows, missing, stack = [], [], []
    skip_deeper_than = None  # inside a documented map or a block scalar: its lines are not keys
    for i, line in enumerate(lines):
        match = KEY.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        if skip_deeper_than is not None and indent > skip_deeper_than:
            continue
        skip_deeper_than = None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [match["key"]])
        description, default = _comment_above(lines, i)
        following = next((ln for ln in lines[i + 1 :] if ln.strip() and not ln.strip().startswith("#")), "")
        has_children = match["rest"].strip() == "" and len(following) - len(following.lstrip()) > indent
        if description is not None:
            rows.append((path, description, default))
            skip_deeper_than = indent
        elif has_children:
            stack.append((indent, match["key"]))
        else:
            missing.append(path)
    return rows, missing


def _comment_above(lines: list[str], i: int) -> tuple[str | None, str | None]:
    block = []
    j = i - 1
    while j >= 0 and lines[j].strip().startswith("#"):
        block.insert(0, lines[j].strip().lstrip("#").strip())
        j -= 1
    description, default = None, None
    for text in block:
        if text.startswith("@default --"):
            default = text.removeprefix("@default --").strip()
        elif text.startswith("--"):
            description = text.removeprefix("--").strip()
        elif description is not None:
            description += " " + text
    return description, default


def _lookup(tree, path: str):
    for part in path.split("."):
        tree = tree[part]
    return tree


def _schema_type(schema: dict, path: str) -> str:
    for part in path.split("."):
        schema = schema["properties"][part]
    kind = schema.get("type", "")
    return "/".join(kind) if isinstance(kind, list) else kind


def table() -> tuple[str, list[str]]:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    schema = json.loads((CHART / "values.schema.json").read_text())
    rows, missing = documented_keys(text)
    out = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for path, description, default in rows:
        shown = default or f"`{json.dumps(_lookup(values, path))}`"
        out.append(f"| {path} | {_schema_type(schema, path)} | {shown.replace('|', '&#124;')} | {description} |")
    return "\n".join(out), missing


def main() -> int:
    check = "--check" in sys.argv[1:]
    rendered, missing = table()
    if missing:
        print("values.yaml keys without a `# --` comment: " + ", ".join(missing))
        return 1
    readme = CHART / "README.md"
    current = readme.read_text()
    head, rest = current.split(START, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{START}\n{rendered}\n{END}{tail}"
    if updated == current:
        return 0
    if check:
        print("helm/meow/README.md is stale: run python helm/meow/scripts/values_table.py")
        return 1
    readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
