"""The code's structure, read from its source: one atomic writer, one way to form mono, prints only in
the command line, no import loops, no notes about how the work was done."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("tas_eval", "baselines", "leaderboard")


def _sources() -> dict[str, Path]:
    """Module name -> file of every module of the shipped packages."""
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _calls(tree: ast.AST) -> list[tuple[str, int]]:
    """Dotted names of every call in a module, with their line numbers."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            parts, f = [], node.func
            while isinstance(f, ast.Attribute):
                parts.append(f.attr)
                f = f.value
            if isinstance(f, ast.Name):
                parts.append(f.id)
            found.append((".".join(reversed(parts)), node.lineno))
    return found


def test_files_are_published_only_through_the_one_atomic_writer():
    bad = []
    for name, path in _sources().items():
        if name == "tas_eval.io":
            continue
        for call, line in _calls(ast.parse(path.read_text())):
            if call in ("os.replace", "os.rename", "tempfile.mkstemp", "tempfile.NamedTemporaryFile") or \
                    call.endswith((".write_text", ".write_bytes")):
                bad.append(f"{path.relative_to(REPO)}:{line}: {call}")
    assert not bad, "write files with tas_eval.io (atomic_path / write_bytes_atomic):\n" + "\n".join(bad)


def test_mono_is_formed_only_by_mono_from_binaural():
    pattern = re.compile(r"\[[^\]]*0:1[^\]]*\]\s*\+\s*[\w.]*\[[^\]]*1:2[^\]]*\]")
    bad = [f"{p.relative_to(REPO)}:{i}" for name, p in _sources().items()
           for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)
           and name != "tas_eval.audio"]
    assert not bad, "form L + R with tas_eval.audio.mono_from_binaural:\n" + "\n".join(bad)


def test_only_the_command_line_prints():
    bad = [f"{p.relative_to(REPO)}:{line}" for name, p in _sources().items() if not name.startswith("tas_eval.cli")
           for call, line in _calls(ast.parse(p.read_text())) if call == "print"]
    assert not bad, "library code logs; tas_eval/cli prints:\n" + "\n".join(bad)


def test_no_import_loops():
    modules = _sources()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            # a package and its own modules import each other by design (registries, re-exports)
            graph[name] |= {t for t in targets if t in modules and not (t.startswith(name + ".") or name.startswith(t + "."))}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and (seen.add(nxt) or reaches(nxt, goal, seen))):
                return True
        return False

    loops = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if a < b and reaches(b, a, {b}))
    assert not loops, "import loops:\n" + "\n".join(loops)


def test_no_notes_about_the_process_in_code_or_user_facing_text():
    pattern = re.compile(r"\bissue\s+#?\d+\b|\bthis session\b", re.IGNORECASE)
    paths = list(_sources().values()) + list((REPO / "leaderboard").glob("*.json")) + [REPO / "README.md"] \
        + list((REPO / "docs").glob("*.md")) + list((REPO / "baselines" / "cards").glob("*.md"))
    bad = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in paths
           for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not bad, "\n".join(bad)
