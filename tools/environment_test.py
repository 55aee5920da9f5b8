"""Every environment variable the repository's Python reads is declared in tools/environment.txt.

A setting that code reads but tools/bazel does not pass silently does nothing
under `bazel run`; one declaration (tools/environment.txt) says what passes
and what is set by Bazel, Vertex or a BUILD file. This test reads every .py
file of the source tree (found through the declaration's own runfiles link, so
it sees files no target lists yet; tagged `external` so it always reruns) and
names each read of an undeclared variable: `os.environ[...]`, `os.environ.get`,
`os.getenv`, `"X" in os.environ`, and the same through a parameter named
`environ`, with the name given as a string, a module constant, or a loop over
a module-level table of names.
"""

import ast
import os
import pathlib

import pytest

DECLARATION = pathlib.Path("tools/environment.txt")
READABLE_KINDS = {"passed", "action", "internal"}  # `host` is tools/bazel's own, never seen by Python
SKIP_DIRS = {".git", "node_modules"}


def declared() -> dict[str, str]:
    out = {}
    for line in DECLARATION.read_text().splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#"):
            assert len(parts) >= 3, f"{DECLARATION}: want NAME KIND what-it-is: {line!r}"
            assert parts[0] not in out, f"{DECLARATION}: {parts[0]} is declared twice"
            out[parts[0]] = parts[1]
    return out


def source_tree() -> pathlib.Path:
    return pathlib.Path(os.path.realpath(DECLARATION)).parent.parent


def python_files(root: pathlib.Path) -> list[pathlib.Path]:
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("bazel-"))
        out += [pathlib.Path(folder, f) for f in sorted(files) if f.endswith(".py")]
    return out


def _is_environ(node: ast.AST) -> bool:
    """os.environ, or a name `environ` (a parameter that defaults to it)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ"
    return isinstance(node, ast.Name) and node.id == "environ"


def _constants(tree: ast.Module) -> dict[str, list[str]]:
    """Module-level NAME = "str", or a dict/list/tuple/set of str keys: the names each may stand for."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value
            items = value.keys if isinstance(value, ast.Dict) else getattr(value, "elts", [value])
            strings = [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]
            if strings and len(strings) == len(items):
                out[node.targets[0].id] = strings
    return out


def _loop_names(tree: ast.Module, constants: dict) -> dict[str, list[str]]:
    """Loop targets over a module-level table: `for name in ENV_VARS`, also in comprehensions."""
    out = {}
    for node in ast.walk(tree):
        loops = [node] if isinstance(node, ast.For) else getattr(node, "generators", [])
        for loop in loops:
            if isinstance(loop.target, ast.Name) and isinstance(loop.iter, ast.Name) and loop.iter.id in constants:
                out[loop.target.id] = constants[loop.iter.id]
    return out


def reads(source: str) -> tuple[set[str], list[str]]:
    """(variable names read, expressions whose name cannot be told) in one module's source (pure)."""
    tree = ast.parse(source)
    constants = _constants(tree)
    names = {**constants, **_loop_names(tree, constants)}
    found, unknown = set(), []

    def note(arg: ast.AST) -> None:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            found.add(arg.value)
        elif isinstance(arg, ast.Name) and arg.id in names:
            found.update(names[arg.id])
        else:
            unknown.append(ast.unparse(arg))

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
            note(node.slice)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr in ("get", "pop", "setdefault") and _is_environ(node.func.value):
                note(node.args[0])
            elif node.func.attr == "getenv":
                note(node.args[0])
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops) \
                and any(_is_environ(c) for c in node.comparators):
            note(node.left)
    return found, unknown


@pytest.mark.parametrize(
    "source,names,unknown",
    [
        ('import os\nos.environ["A"]\nos.environ.get("B")\nos.getenv("C")', {"A", "B", "C"}, []),
        ('def f(environ):\n    return environ.get("D"), "E" in environ', {"D", "E"}, []),
        ('VAR = "F"\nimport os\nos.environ.get(VAR)', {"F"}, []),
        ('T = {"G": 1, "H": 2}\ndef f(environ):\n    return {n: environ[n] for n in T}', {"G", "H"}, []),
        ('import os\nos.environ["I"] = "1"\nenv = {}\nenv["J"]', set(), []),  # writes and other dicts
        ('import os\ndef f(k):\n    return os.environ[k]', set(), ["k"]),  # cannot tell: must be named
    ],
)
def test_reads(source, names, unknown):
    assert reads(source) == (names, unknown)


def test_every_variable_python_reads_is_declared():
    kinds = declared()
    root = source_tree()
    files = python_files(root)
    assert any(f.name == "cli.py" for f in files), f"no source tree at {root}"
    problems = []
    for path in files:
        found, unknown = reads(path.read_text())
        where = path.relative_to(root)
        problems += [f"{where}: reads {name}, which {DECLARATION} does not declare" for name in sorted(found)
                     if kinds.get(name) not in READABLE_KINDS]
        problems += [f"{where}: reads os.environ[{expr}]: use a name or a module constant" for expr in unknown]
    assert not problems, "\n".join(problems)


def test_every_declared_kind_is_known():
    assert set(declared().values()) <= READABLE_KINDS | {"host"}
