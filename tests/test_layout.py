"""The layout: the README's architecture map names every module, no import cycles, and the
harness reaches upstream helpers only through the module contract."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("benchmark", "upstreams", "downstreams")


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages."""
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a file imports (function-local imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def test_the_architecture_map_names_every_module() -> None:
    section = REPO.joinpath("README.md").read_text().split("## Architecture", 1)[1].split("\n### ", 1)[0]
    blocks = re.split(r"^- `([\w/]+)/`:", section, flags=re.M)[1:]
    named = {folder: set(re.findall(r"`(\w+\.py)`", text)) for folder, text in zip(blocks[::2], blocks[1::2])}
    folders = {p.parent.relative_to(REPO).as_posix() for p in _modules().values()}
    assert set(named) == folders
    for folder in folders:
        files = {p.name for p in (REPO / folder).glob("*.py")} - {"__init__.py"}
        assert named[folder] == files, folder


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {m: {i for i in _imports(p, modules) if i != m and not m.startswith(i + ".")} for m, p in modules.items()}
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            assert state.get(n) != 1, "import cycle: " + " -> ".join(path[path.index(n):] + [n])
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_harness_imports_no_upstream_helper() -> None:
    modules = _modules()
    for name, path in modules.items():
        if name.startswith(("benchmark", "downstreams")):
            helpers = {i for i in _imports(path, modules) if re.match(r"upstreams\._", i)}
            assert not helpers, f"{name} imports {helpers}: read upstream modules through the contract"


def test_relative_links_in_the_docs_resolve() -> None:
    # the README points to docs/ and results/ for its figures; a moved page must not leave a dead link
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), REPO / "results" / "README.md"]
    dead = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor in the same page
            if not (page.parent / target.split("#", 1)[0]).exists():
                dead.append(f"{page.relative_to(REPO)}: {target}")
    assert not dead, f"expected every relative link to resolve, got dead links: {dead}"
