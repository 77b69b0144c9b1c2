#!/usr/bin/env python3
"""Check that the TLA+ specs in this folder are well-formed.

For each spec (default: WorldProtocol.tla next to this script):
  * parse it with the `tla` package (PyPI, by johnyf), which fails on any syntax error;
  * check that every operator its .cfg files (WorldProtocol*.cfg) name (SPECIFICATION,
    INVARIANT(S), PROPERTY(IES)) is defined in the module, and that each .cfg sets exactly
    the CONSTANTS the module declares.

Exits 0 when every spec passes, 1 on a check failure, 2 when the parser cannot be imported.
This is a syntax and consistency check; ci.sh then model-checks the spec with TLC.
"""

import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
CFG_SECTIONS = {
    "SPECIFICATION": "operator",
    "INVARIANT": "operator",
    "INVARIANTS": "operator",
    "PROPERTY": "operator",
    "PROPERTIES": "operator",
    "CONSTANT": "constant",
    "CONSTANTS": "constant",
}


def strip_comments(text: str) -> str:
    """Remove (* block *) and \\* line comments from TLA+ or .cfg text."""
    text = re.sub(r"\(\*.*?\*\)", " ", text, flags=re.S)
    return re.sub(r"\\\*.*", "", text)


def cfg_names(cfg_text: str) -> dict:
    """Map 'operator' and 'constant' to the names the .cfg refers to."""
    names = {"operator": set(), "constant": set()}
    kind = None
    for raw in strip_comments(cfg_text).splitlines():
        words = raw.split()
        if not words:
            continue
        if words[0] in CFG_SECTIONS:
            kind = CFG_SECTIONS[words[0]]
            words = words[1:]
        elif words[0].isupper() and words[0].isalpha():
            kind = None  # a section this check does not read
            continue
        if kind is None:
            continue
        if kind == "constant":
            for match in re.finditer(r"([A-Za-z_]\w*)\s*(?:=|<-)", " ".join(words)):
                names["constant"].add(match.group(1))
        else:
            names["operator"].update(words)
    return names


def module_names(tla_text: str) -> dict:
    """Map 'operator' and 'constant' to the names the module defines or declares."""
    body = strip_comments(tla_text)
    operators = set(re.findall(r"^\s*([A-Za-z_]\w*)\s*(?:\([^)]*\))?\s*==", body, flags=re.M))
    constants = set()
    for block in re.findall(r"\bCONSTANTS?\b(.*?)(?=\n\s*\n|\bVARIABLES?\b|----)", body, flags=re.S):
        constants.update(re.findall(r"[A-Za-z_]\w*", block))
    return {"operator": operators, "constant": constants}


def check(spec: pathlib.Path, tla) -> list:
    """Return a list of problems with `spec` (empty when it is well-formed)."""
    text = spec.read_text(encoding="utf-8")
    problems = []
    try:
        tree = tla.parse(text)
    except Exception as error:  # the parser raises ValueError, but be robust
        tree = None
        problems.append(f"{spec.name}: parse error: {error}")
    else:
        if tree is None:
            problems.append(f"{spec.name}: the parser returned no syntax tree")
    have = module_names(text)
    for cfg in sorted(spec.parent.glob(spec.stem + "*.cfg")):
        wanted = cfg_names(cfg.read_text(encoding="utf-8"))
        for kind in ("operator", "constant"):
            for name in sorted(wanted[kind] - have[kind]):
                problems.append(f"{cfg.name}: {kind} {name} is not defined in {spec.name}")
        for name in sorted(have["constant"] - wanted["constant"]):
            problems.append(f"{cfg.name}: constant {name} of {spec.name} is not set")
    return problems


def main(argv: list) -> int:
    try:
        import tla  # noqa: PLC0415 - the import itself is part of the check
    except ImportError as error:
        print(f"check_tla: cannot import the TLA+ parser ('pip install tla'): {error}")
        return 2
    specs = [pathlib.Path(a) for a in argv] or [HERE / "WorldProtocol.tla"]
    failed = False
    for spec in specs:
        problems = check(spec, tla)
        for problem in problems:
            print(f"check_tla: {problem}")
        if problems:
            failed = True
        else:
            print(f"check_tla: {spec.name}: ok (parsed; the names of its .cfg files resolve)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
