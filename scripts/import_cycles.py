#!/usr/bin/env python3
"""No circles between the modules of a crate: prints every group of files that import each
other, directly or around a loop, and exits 1 if there is one.

A module's imports are the `crate::a::b` and `super::a` paths in its code (comments and its
`#[cfg(test)] mod tests` left out), each resolved to the longest module the path names. A
module may use its ancestors' items (a parent re-exports what its children share).

Usage: import_cycles.py SRC_DIR...   (e.g. origin/src edge/src core/src)
"""

import os
import re
import sys

PATH = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")
COMMENT = re.compile(r"^\s*//.*$", re.M)
TESTS = "#[cfg(test)]\nmod tests"


def modules(src):
    """Module name (`a::b`, '' for the crate root) -> its code."""
    found = {}
    for directory, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, src)[:-3].replace(os.sep, "/")
            if rel.endswith("/mod"):
                rel = rel[: -len("/mod")]
            module = "" if rel in ("lib", "main") else rel.replace("/", "::")
            with open(path, encoding="utf-8") as file:
                code = file.read()
            if TESTS in code:
                code = code[: code.index(TESTS)]
            found[module] = COMMENT.sub("", code)
    return found


def imports(found):
    graph = {}
    for module, code in found.items():
        parts = module.split("::") if module else []
        deps = set()
        for match in PATH.finditer(code):
            base = [] if match.group(1) == "crate" else parts[:-1]
            segments = match.group(2).strip(":").split("::")
            for length in range(len(segments), 0, -1):
                target = "::".join(base + segments[:length])
                if target in found:
                    break
            else:
                continue
            ancestor = target == "" or module.startswith(target + "::")
            if target != module and not ancestor:
                deps.add(target)
        graph[module] = deps
    return graph


def circles(graph):
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph.get(node, ()):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def main(sources):
    failed = False
    for src in sources:
        graph = imports(modules(src))
        found = circles(graph)
        for group in found:
            failed = True
            edges = [f"{a} -> {b}" for a in group for b in sorted(graph[a]) if b in group]
            print(f"{src}: import circle: {', '.join(edges)}", file=sys.stderr)
        if not found:
            print(f"  {src}: {len(graph)} modules, no import circle", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
