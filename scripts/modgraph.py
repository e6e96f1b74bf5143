#!/usr/bin/env python3
"""The crate's module graph, read from the paths in its source, and its rules.

Reads every file under src/ (one node per module file; inline `mod x { .. }`
modules count as their file, `#[cfg(test)]` modules and uses are left out), takes
each `use crate::..`, `use super::..`, `use self::..`, `use child::..` and every
`crate::x::..` / `super::x::..` path in code (comments and strings removed),
resolves it to the module that defines the name (following `pub use`
re-exports), prints the graph and checks three rules:

  cycle   no import cycle among modules (an edge inside a strongly connected
          component of the file graph);
  upward  arrows point down the layers (layer 1: proto, handshake, settings,
          hub_wire; 2: actor, metrics; 3: web, server, client, tls; 4: hub; the crate
          root's re-exports excepted);
  root    names are imported from the module that owns them, not through the
          crate root's re-exports (`crate::Conn` -> `crate::actor::Conn`).

Known violations are listed in scripts/modgraph.allow, one a line
(`kind from -> to`); the check fails on a violation not listed there, and on a
listed one that is gone (delete its line: the list only shrinks).

Usage: python3 scripts/modgraph.py [--quiet] [--allow FILE] [--root CRATE_DIR]
Exit status 0 when the rules hold (modulo the list), 1 otherwise.
"""

import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
if "--root" in sys.argv:
    ROOT = os.path.abspath(sys.argv[sys.argv.index("--root") + 1])
SRC = os.path.join(ROOT, "src")
EXTERNAL = ("<another crate>",)
LAYERS = {
    "proto": 1,
    "handshake": 1,
    "settings": 1,
    "hub_wire": 1,
    "actor": 2,
    "metrics": 2,
    "web": 3,
    "server": 3,
    "client": 3,
    "tls": 3,
    "hub": 4,
}


# --- reading files -------------------------------------------------------------


def module_of(path):
    """src/a/b.rs and src/a/b/mod.rs -> ("a", "b"); src/lib.rs -> ()."""
    rel = os.path.relpath(path, SRC)[: -len(".rs")].split(os.sep)
    if rel == ["lib"] or rel == ["main"]:
        return ()
    if rel[-1] == "mod":
        rel = rel[:-1]
    return tuple(rel)


def strip(text):
    """The text with comments, strings and char literals blanked (lines kept)."""
    out = []
    i, n = 0, len(text)

    def blank(s):
        return "".join(c if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_") or text[i - 1] == "b"):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + len(hashes) + 2)
            end = n if end < 0 else end + 1 + len(hashes)
            out.append(blank(text[i:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i : j + 1]))
            i = j + 1
        elif c == "'":
            if i + 1 < n and text[i + 1] == "\\":
                j = text.find("'", i + 2)
                j = n if j < 0 else j
                out.append(blank(text[i : j + 1]))
                i = j + 1
            elif i + 2 < n and text[i + 2] == "'":
                out.append("   ")
                i += 3
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching_brace(text, i):
    """The index after the brace that closes the one at text[i]."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


TEST_ITEM = re.compile(r"#\[cfg\((?:test|all\(test[^\]]*\))\)\]\s*(?:pub(?:\([^)]*\))?\s+)?(mod\s+\w+\s*\{|use\b[^;]*;)")


def drop_tests(text):
    """Blank `#[cfg(test)]` modules and uses."""
    while True:
        m = TEST_ITEM.search(text)
        if not m:
            return text
        if m.group(1).startswith("mod"):
            end = matching_brace(text, m.end() - 1)
        else:
            end = m.end()
        text = text[: m.start()] + "".join(ch if ch == "\n" else " " for ch in text[m.start() : end]) + text[end:]


INLINE_MOD = re.compile(r"\bmod\s+(\w+)\s*\{")


def scopes(text):
    """[(start, end, name)] of the inline `mod name { .. }` blocks of a file."""
    found = []
    for m in INLINE_MOD.finditer(text):
        start = m.end() - 1
        found.append((start, matching_brace(text, start), m.group(1)))
    return found


def scope_at(found, base, pos):
    """The module the code at `pos` of the file of module `base` is in."""
    path = list(base)
    for start, end, name in found:
        if start <= pos < end:
            path.append(name)
    return tuple(path)


# --- use trees -----------------------------------------------------------------

USE = re.compile(r"\b(pub(?:\s*\([^)]*\))?\s+)?use\s+([^;]+);")


def expand(tree):
    """`a::{b, c::{d as e, self}}` -> [(["a","b"], "b"), (["a","c","d"], "e"), (["a","c"], "c")]."""
    tree = re.sub(r"\s+", " ", tree).strip()
    results = []

    def parse(s, prefix):
        s = s.strip()
        if not s:
            return
        brace = s.find("{")
        if brace >= 0 and s.endswith("}"):
            head = s[:brace].strip().rstrip(":").strip()
            new_prefix = prefix + [p.strip() for p in head.split("::") if p.strip()]
            inner = s[brace + 1 : -1]
            depth, part = 0, ""
            for ch in inner:
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                if ch == "," and depth == 0:
                    parse(part, new_prefix)
                    part = ""
                else:
                    part += ch
            parse(part, new_prefix)
            return
        alias = None
        m = re.match(r"(.*?)\s+as\s+(\w+)$", s)
        if m:
            s, alias = m.group(1), m.group(2)
        segs = prefix + [p.strip() for p in s.split("::") if p.strip()]
        if segs and segs[-1] == "self":
            segs = segs[:-1]
        if not segs:
            return
        results.append((segs, alias or segs[-1]))

    parse(tree, [])
    return results


# --- the crate -----------------------------------------------------------------


class Crate:
    def __init__(self):
        self.files = {}  # module -> (relative path, stripped text)
        for dirpath, _, names in os.walk(SRC):
            for name in sorted(names):
                if name.endswith(".rs"):
                    path = os.path.join(dirpath, name)
                    with open(path, encoding="utf-8") as f:
                        text = drop_tests(strip(f.read()))
                    self.files[module_of(path)] = (os.path.relpath(path, ROOT), text)
        self.modules = set(self.files)
        # Inline modules are modules too (for `super::` inside them), but belong
        # to their file's node.
        self.inline = {}
        for module, (_, text) in self.files.items():
            found = scopes(text)
            self.inline[module] = found
            for start, _, _ in found:
                self.modules.add(scope_at(found, module, start + 1))
        # pub use re-exports: module -> {name: absolute target path}
        self.exports = {m: {} for m in self.modules}
        self.uses = []  # (file module, scope, line, segments, re-exported name or False)
        self.code = {}  # file module -> its code without use declarations
        self.aliases = {}  # scope -> {name a use brought in: absolute path}
        for module, (_, text) in self.files.items():
            found = self.inline[module]
            for m in USE.finditer(text):
                scope = scope_at(found, module, m.start())
                line = text.count("\n", 0, m.start()) + 1
                reexport = bool(m.group(1))
                for segs, alias in expand(m.group(2)):
                    if segs[-1] == "*":
                        continue
                    absolute = self.absolute(scope, segs)
                    if absolute is not None:
                        # `use crate::proto;` then `proto::Message` in this scope
                        self.aliases.setdefault(scope, {})[alias] = absolute
                    if reexport:
                        # Another crate's name re-exported here is no arrow.
                        self.exports.setdefault(scope, {})[alias] = absolute or EXTERNAL
                    if absolute is not None:
                        self.uses.append((module, scope, line, segs, reexport and alias))
            # paths in code, outside use declarations: from `crate`, `super`,
            # `self`, or a child module's name (`state::Local::create`)
            masked = USE.sub(lambda u: "".join(ch if ch == "\n" else " " for ch in u.group(0)), text)
            self.code[module] = masked
            children = {m[-1] for m in self.modules if len(m) == len(module) + 1 and m[:-1] == module}
            imported = {a for sc, names in self.aliases.items() if self.file_of(sc) == module for a, t in names.items() if t in self.modules}
            starts = ["crate", "super", "self"] + sorted(children | imported)
            path = re.compile(r"(?<![\w:$])\$?(" + "|".join(starts) + r")((?:\s*::\s*\w+)+)")
            for m in path.finditer(masked):
                segs = [m.group(1)] + [p.strip() for p in m.group(2).split("::") if p.strip()]
                scope = scope_at(found, module, m.start())
                line = masked.count("\n", 0, m.start()) + 1
                self.uses.append((module, scope, line, segs, False))

    def file_of(self, module):
        """The file node a module (perhaps inline) belongs to."""
        while module not in self.files:
            module = module[:-1]
        return module

    def absolute(self, scope, segs):
        """The absolute path of `segs` used in `scope`, or None (another crate)."""
        first = segs[0].lstrip("$")
        if first == "crate":
            return tuple(segs[1:])
        if first in ("super", "self"):
            base = list(scope)
            rest = list(segs)
            while rest and rest[0] in ("super", "self"):
                if rest.pop(0) == "super":
                    base = base[:-1]
            return tuple(base + rest)
        if tuple(scope) + (first,) in self.modules:
            return tuple(scope) + tuple(segs)
        imported = self.aliases.get(tuple(scope), {}).get(first)
        if imported is not None:
            return tuple(imported) + tuple(segs[1:])
        return None

    def resolve(self, path, seen=None):
        """(owning module, went through the crate root's re-exports)."""
        seen = seen or set()
        module = ()
        i = 0
        while i < len(path) and module + (path[i],) in self.modules:
            module = module + (path[i],)
            i += 1
        if i < len(path):
            name = path[i]
            target = self.exports.get(module, {}).get(name)
            if target is EXTERNAL:
                return None, False
            if target is not None and (module, name) not in seen:
                seen.add((module, name))
                owner, _ = self.resolve(target + tuple(path[i + 1 :]), seen)
                return owner, module == ()
        return module, False


def name(module):
    return "::".join(module) if module else "crate"


def layer(module):
    return LAYERS.get(module[0]) if module else None


def sccs(nodes, edges):
    """Tarjan's strongly connected components."""
    index, low, stack, on, result = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            result.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return result


def main(argv):
    quiet = "--quiet" in argv
    allow_path = os.path.join(ROOT, "scripts", "modgraph.allow")
    if "--allow" in argv:
        allow_path = argv[argv.index("--allow") + 1]
    crate = Crate()

    edges = {}  # from file node -> {to file node: [evidence]}
    roots = {}  # (from, "crate::Name") -> [evidence]
    for module, scope, line, segs, reexport in crate.uses:
        path = crate.absolute(scope, segs)
        if path is None:
            continue
        owner, via_root = crate.resolve(path)
        if owner is None:
            continue  # another crate's name, re-exported
        src = module
        if src == ():
            continue  # the crate root: module declarations and re-exports
        dst = crate.file_of(owner) if owner else ()
        where = f"{crate.files[module][0]}:{line}"
        if reexport and dst[: len(src)] == src:
            # A module re-exporting its own children is structure, unless its own
            # code uses the name too.
            if not re.search(r"(?<![\w:])" + re.escape(reexport) + r"\b", crate.code[module]):
                continue
        if via_root and where not in roots.get((src, "crate::" + path[0]), []):
            roots.setdefault((src, "crate::" + path[0]), []).append(where)
        if dst == src or dst == ():
            continue
        found = edges.setdefault(src, {}).setdefault(dst, [])
        if where not in found:
            found.append(where)

    nodes = set(crate.files) - {()}
    violations = {}  # line -> evidence
    for comp in sccs(nodes, {k: set(v) for k, v in edges.items()}):
        if len(comp) < 2:
            continue
        for a in sorted(comp):
            for b in sorted(edges.get(a, {})):
                if b in comp:
                    violations[f"cycle {name(a)} -> {name(b)}"] = edges[a][b]
    for a in sorted(edges):
        for b in sorted(edges[a]):
            la, lb = layer(a), layer(b)
            if la is not None and lb is not None and lb > la:
                violations[f"upward {name(a)} -> {name(b)}"] = edges[a][b]
    for (a, via), where in sorted(roots.items()):
        violations[f"root {name(a)} -> {via}"] = where

    if not quiet:
        print("# module graph (one node per file; -> what it imports)")
        for a in sorted(nodes):
            targets = ", ".join(name(b) for b in sorted(edges.get(a, {})))
            print(f"{name(a)} -> {targets}" if targets else f"{name(a)}")
        print("\n# top-level modules, by layer")
        top = {}
        for a in edges:
            for b in edges[a]:
                if a[0] != b[0]:
                    top.setdefault(a[0], set()).add(b[0])
        for t in sorted(LAYERS, key=lambda t: (LAYERS[t], t)):
            print(f"layer {LAYERS[t]} {t} -> {', '.join(sorted(top.get(t, ())))}")

    allowed = set()
    if os.path.exists(allow_path):
        with open(allow_path, encoding="utf-8") as f:
            for raw in f:
                entry = raw.split("#", 1)[0].strip()
                if entry:
                    allowed.add(re.sub(r"\s+", " ", entry))
    new = sorted(set(violations) - allowed)
    stale = sorted(allowed - set(violations))
    known = sorted(set(violations) & allowed)
    if not quiet:
        print(f"\n# violations: {len(violations)} ({len(known)} known, listed in {os.path.relpath(allow_path, ROOT)})")
        for v in known:
            print(f"known {v}  ({', '.join(violations[v][:3])})")
    for v in new:
        print(f"NEW {v}  ({', '.join(violations[v][:3])})", file=sys.stderr)
    for v in stale:
        print(f"FIXED {v}: delete its line from {os.path.relpath(allow_path, ROOT)}", file=sys.stderr)
    if new or stale:
        print(f"modgraph: {len(new)} new violation(s), {len(stale)} fixed one(s) still listed", file=sys.stderr)
        return 1
    print(f"modgraph: {len(nodes)} modules, {sum(len(v) for v in edges.values())} arrows, {len(known)} known violations, none new")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
