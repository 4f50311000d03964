"""Reports import cycles among the modules of a Rust crate.

A module imports another when its source names a path into it: `crate::a::b`, `super::x`,
`self::x`, or `child::x` for a module it declares. A cycle is a chain of such imports that
comes back to where it started (a module importing from a module that imports it, directly or
through others). Declaring a module (`mod x;`) is not an import, and a name a module re-exports
(`pub use a::X;`) counts as an import of `a`, not of the re-exporting module (and as an
import of `a` by the re-exporting module when it uses `X` itself).

    python scripts/module_cycles.py py-binding/src      # exit status 1 when there is a cycle
"""

from __future__ import annotations

import pathlib
import re
import sys

PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\}", re.DOTALL)
PUB_USE = re.compile(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);")
MOD_DECL = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;", re.MULTILINE)


Module = tuple[str, ...]
Reexports = dict[tuple[Module, str], Module]


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def module_of(src: pathlib.Path, file: pathlib.Path) -> Module:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts.pop()
    return tuple(parts)


def resolve(path: Module, modules: set[Module], reexports: Reexports) -> Module:
    """The longest declared module that `path` starts with (through one re-export)."""
    for n in range(len(path), -1, -1):
        if path[:n] in modules:
            if n < len(path) and (path[:n], path[n]) in reexports:
                return reexports[(path[:n], path[n])]
            return path[:n]
    return ()


def paths_in(text: str, me: Module, children: set[str]) -> list[tuple[str, list[str]]]:
    """Every `crate::`/`super::`/`self::`/child path in `text`, as (root, segments)."""
    paths: list[tuple[str, list[str]]] = []
    for root, prefix, group in USE_GROUP.findall(text):
        head = [p for p in prefix.split("::") if p]
        for item in re.split(r"[,\s]+", re.sub(r"\{[^}]*\}", "", group)):
            item = item.split(" as ")[0].strip()
            if item == "self":
                paths.append((root, head))
            elif item:
                paths.append((root, head + item.split("::")))
    for root, rest in PATH.findall(text):
        paths.append((root, [p for p in rest.split("::") if p]))
    for child in children:
        for rest in re.findall(rf"(?<![:\w]){child}((?:::[A-Za-z_][A-Za-z0-9_]*)+)", text):
            paths.append(("self", [child] + [p for p in rest.split("::") if p]))
    return paths


def absolute(me: Module, root: str, rest: list[str]) -> Module:
    # `self` of a file module `a/b.rs` is `a::b`; `super` is its parent.
    if root == "crate":
        return tuple(rest)
    base = list(me)
    if root == "super":
        base = base[:-1]
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    return tuple(base + rest)


def imports(src: pathlib.Path) -> dict[Module, set[Module]]:
    files = sorted(src.rglob("*.rs"))
    modules = {module_of(src, f) for f in files}
    texts = {f: strip_comments(f.read_text()) for f in files}
    reexports: Reexports = {}
    for f, text in texts.items():
        me = module_of(src, f)
        children = set(MOD_DECL.findall(text))
        for decl in PUB_USE.findall(text):
            for root, rest in paths_in("use " + decl.strip() + ";", me, children):
                if not rest:
                    continue
                target = resolve(absolute(me, root, rest), modules, {})
                alias = decl.split(" as ")[-1].strip() if " as " in decl and "{" not in decl else rest[-1]
                if target != me:
                    reexports[(me, alias)] = target
    graph: dict[Module, set[Module]] = {m: set() for m in modules}
    for f, text in texts.items():
        me = module_of(src, f)
        body = PUB_USE.sub("", text)
        for root, rest in paths_in(body, me, set(MOD_DECL.findall(text))):
            target = resolve(absolute(me, root, rest), modules, reexports)
            if target != me:
                graph[me].add(target)
        # A name this module re-exports and also uses itself is an import of its source.
        for (owner, alias), target in reexports.items():
            if owner == me and re.search(rf"(?<![:\w]){alias}\b", body):
                graph[me].add(target)
    return graph


def cycles(graph: dict[Module, set[Module]]) -> list[list[Module]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[Module, int] = {}
    low: dict[Module, int] = {}
    stack: list[Module] = []
    on_stack: set[Module] = set()
    found: list[list[Module]] = []

    def visit(v: Module) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def name(m: Module) -> str:
    return "::".join(m) or "crate"


def main(argv: list[str]) -> int:
    src = pathlib.Path(argv[1] if len(argv) > 1 else "py-binding/src")
    graph = imports(src)
    if "-v" in argv:
        for m in sorted(graph):
            print(f"{name(m)} -> {', '.join(name(t) for t in sorted(graph[m])) or '-'}")
    found = cycles(graph)
    for comp in found:
        members = set(comp)
        edges = [f"{name(a)} -> {name(b)}" for a in comp for b in sorted(graph[a]) if b in members]
        print(f"cycle among {', '.join(name(m) for m in comp)}: {'; '.join(edges)}")
    if not found:
        print(f"{src}: {len(graph)} modules, no import cycle")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
