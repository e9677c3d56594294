"""tfvae's own imports: no cycle among its modules, and the models without the input pipeline.

The graph is read from the source with `ast`, whatever the package's layout: every module
under tfvae/, and every import in it, at module level or inside a function (an import moved into
a function to dodge a cycle is still a cycle).
"""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "tfvae"
# The input pipeline, and the library only it needs: a model must build and load without them.
PIPELINE = ("tfvae.data", "tfvae.sources", "tfvae.mnist", "tfvae.catalog", "tfvae.images",
            "tensorflow_datasets")


def package_modules():
    """{dotted module name: its file} of every module of the package."""
    modules = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(name, path, modules):
    """Yields (imported tfvae module, line, function or None) for each import in `path`."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                else function
            for target in targets(child):
                if target in modules and target != name:
                    yield target, child.lineno, function
            yield from visit(child, inner)

    def targets(node):
        if isinstance(node, ast.Import):
            return [deepest_module(alias.name) for alias in node.names]
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..y import z
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from tfvae import data` imports the module tfvae.data; `from tfvae.x import f`, x
            return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules
                    else deepest_module(base) for alias in node.names]
        return []

    def deepest_module(dotted):
        parts = dotted.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        return ".".join(parts)

    yield from visit(tree, None)


def import_graph(modules, root=ROOT):
    """{module: {imported module: 'file:line (in f())' of its first import}} over `modules`."""
    graph = {name: {} for name in modules}
    for name, path in modules.items():
        for target, line, function in imports_of(name, path, modules):
            where = f"{path.relative_to(root)}:{line}" + (f" in {function}()" if function else "")
            graph[name].setdefault(target, where)
    return graph


def find_cycles(graph):
    """One cycle (a list of modules, first == last) through each tangle of mutual imports."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def strongconnect(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                strongconnect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return [shortest_path(graph, min(c), min(c), within=c) for c in components]


def shortest_path(graph, start, goal, within=None):
    """The shortest import chain start -> ... -> goal (of at least one step), or None."""
    paths, seen = [[start]], set()
    while paths:
        path = paths.pop(0)
        for target in sorted(graph[path[-1]]):
            if target == goal:
                return path + [target]
            if target not in seen and (within is None or target in within):
                seen.add(target)
                paths.append(path + [target])
    return None


def describe(graph, chain):
    return "\n".join(f"  {a} -> {b}  ({graph[a][b]})" for a, b in zip(chain, chain[1:]))


def test_the_graph_sees_imports_inside_functions_and_relative_ones(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    from pkg import b\n")
    (tmp_path / "pkg" / "b.py").write_text("from . import c\nfrom .c import thing\n")
    (tmp_path / "pkg" / "c.py").write_text("import pkg.a\n")
    modules = {"pkg": tmp_path / "pkg" / "__init__.py",
               **{f"pkg.{name}": tmp_path / "pkg" / f"{name}.py" for name in "abc"}}
    graph = import_graph(modules, root=tmp_path / "pkg")
    assert graph == {"pkg": {}, "pkg.a": {"pkg.b": "a.py:2 in f()"}, "pkg.b": {"pkg.c": "b.py:1"},
                     "pkg.c": {"pkg.a": "c.py:1"}}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_tfvae_has_no_import_cycle():
    graph = import_graph(package_modules())
    assert "tfvae.data" in graph and graph["tfvae.train"], "the walk found no modules"
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in tfvae:\n" + "\n\n".join(
        describe(graph, cycle) for cycle in cycles)


def test_the_models_do_not_import_the_input_pipeline():
    graph = import_graph(package_modules())
    models = [name for name in graph if name == f"{PACKAGE}.models"
              or name.startswith(f"{PACKAGE}.models.")]
    assert models, "no tfvae.models module or package"
    chains = [shortest_path(graph, model, target) for model in models for target in PIPELINE
              if target in graph]
    chains = [chain for chain in chains if chain]
    assert not chains, "the models import the input pipeline:\n" + "\n\n".join(
        describe(graph, chain) for chain in chains)
    # What Python really loads, including anything imported by name at run time.
    code = "import sys, tfvae.models; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "tfvae.models" in loaded
    assert not loaded & set(PIPELINE), sorted(loaded & set(PIPELINE))


def test_tests_import_the_package_and_helpers_only():
    """A test file imports tfvae, tests/helpers.py and libraries: not another test file, not a
    subprocess script of tests/, not benchmarks/ (those run as programs), and nothing by path
    through importlib."""
    tests = ROOT / "tests"
    own = {path.stem for path in tests.glob("*.py")} - {"helpers", "conftest"}
    wrong = []
    for path in sorted(tests.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in own or top in ("benchmarks", "importlib") or name.startswith("."):
                    wrong.append(f"tests/{path.name}:{node.lineno} imports {name}")
    assert not wrong, "\n".join(wrong)
