#!/usr/bin/env python3
"""Parses every Bicep and Bicep parameter file under infra/ and fails on any syntax error.

Bicep files go through pycep (a Bicep parser from PyPI). .bicepparam files are checked here:
a `using` line naming an existing template, and `param` lines for parameters that template
declares. Prints the environments and their regions, which must number at least two.
"""
import pathlib
import re
import sys

from pycep import BicepParser

root = pathlib.Path(__file__).resolve().parent
failures = []
templates = {}
for path in sorted(root.rglob("*.bicep")):
    try:
        tree = BicepParser().parse(file_path=path)
    except Exception as e:  # pycep raises lark errors of several kinds
        failures.append(f"{path.relative_to(root)}: {e}")
        continue
    templates[path.resolve()] = tree
    print(f"parsed {path.relative_to(root)}: {len(tree.get('parameters', {}))} parameters, {len(tree.get('resources', {}))} resources, {len(tree.get('modules', {}))} modules")

for path in sorted(root.rglob("*.bicepparam")):
    text = path.read_text()
    using = re.search(r"^using\s+'([^']+)'", text, re.M)
    if not using:
        failures.append(f"{path.relative_to(root)}: no using line")
        continue
    target = (path.parent / using.group(1)).resolve()
    if target not in templates:
        failures.append(f"{path.relative_to(root)}: using {using.group(1)}, which does not parse or exist")
        continue
    declared = set(templates[target].get("parameters", {}))
    for name in re.findall(r"^param\s+(\w+)\s*=", text, re.M):
        if name not in declared:
            failures.append(f"{path.relative_to(root)}: parameter {name} is not declared by {using.group(1)}")
    regions = re.findall(r"'([a-z0-9]+)'", (re.search(r"param regions\s*=\s*\[(.*?)\]", text, re.S) or re.match("()", "")).group(1))
    if len(set(regions)) < 2:
        failures.append(f"{path.relative_to(root)}: an environment needs at least two regions, found {regions}")
    print(f"parsed {path.relative_to(root)}: regions {regions}")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
