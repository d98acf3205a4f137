"""The package stays readable for whoever inherits it: short functions, no references to notes outside it."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sfmc_assets"
MAX_FUNCTION_LINES = 50


def _functions(path: Path, root: Path = PACKAGE.parent) -> list[tuple[str, int]]:
    """`(where, lines)` of every function and method in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(f"{path.relative_to(root)}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1)
            for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno is not None]


def test_no_function_is_longer_than_fifty_lines() -> None:
    functions = [f for path in sorted(PACKAGE.rglob("*.py")) for f in _functions(path)]
    assert len(functions) > 500  # the walk saw the package
    long = [f"{where} ({n} lines)" for where, n in functions if n > MAX_FUNCTION_LINES]
    assert not long, "split these into functions that each do one thing:\n" + "\n".join(long)


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n")
    assert _functions(tmp_path / "m.py", tmp_path) == [("m.py:1 f", MAX_FUNCTION_LINES + 1)]


def test_code_and_docs_cite_no_notes_outside_the_repository() -> None:
    root = PACKAGE.parent
    files = [*PACKAGE.rglob("*.py"), *(root / "docs").rglob("*.md"), root / "README.md", *(root / "bench").rglob("*.py")]
    # A relative path that leaves the repository, a path into a reference folder, a note's section label.
    pattern = re.compile(r"(?<!\.)\.\./|\breference/|\bnotes? [A-Z]\d+\b|field notes")
    hits = [f"{p.relative_to(root)}:{i}" for p in files for i, line in enumerate(p.read_text().splitlines(), 1)
            if pattern.search(line)]
    assert not hits, hits


#: An environment variable the package reads: `os.environ[...]`, `os.environ.get(...)`, `os.getenv(...)`,
#: `dg.EnvVar(...)`, `EnvVar(...)` with a literal name.
ENV_READ = re.compile(r"""(?:environ(?:\.get)?[\[(]|getenv\(|EnvVar\()\s*["']([A-Z][A-Z0-9_]+)["']""")


def env_vars_read(paths: list[Path]) -> set[str]:
    return {m.group(1) for p in paths for m in ENV_READ.finditer(p.read_text())}


def test_every_environment_variable_the_package_reads_is_in_the_readme() -> None:
    names = env_vars_read(sorted(PACKAGE.rglob("*.py")))
    assert {"SFMC_CLIENT_SECRET", "AEP_CLIENT_ID", "SFMC_ASSETS_HOME"} <= names  # the scan sees them
    readme = (PACKAGE.parent / "README.md").read_text()
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert not missing, f"add these to README.md's environment variables: {missing}"


def test_the_scan_sees_each_way_of_reading_a_variable(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text('os.environ["A_1"]; os.environ.get("B_2", "x"); os.getenv(\'C_3\'); '
                                   'dg.EnvVar("D_4"); os.environ.get(name)\n')
    assert env_vars_read([tmp_path / "m.py"]) == {"A_1", "B_2", "C_3", "D_4"}


def _blocks(paths: list[Path], n: int = 6) -> set[tuple[str, ...]]:
    """Every run of `n` consecutive code lines (stripped; blank and comment-only lines skipped)."""
    out: set[tuple[str, ...]] = set()
    for path in paths:
        lines = [s for line in path.read_text().splitlines() if (s := line.strip()) and not s.startswith("#")]
        out |= {tuple(lines[i:i + n]) for i in range(len(lines) - n + 1)}
    return out


def test_the_two_service_clients_share_no_block_of_six_lines() -> None:
    """Token cache, sessions, retries, scrubbing and error context live once, in `lib/http`."""
    mc = _blocks(sorted((PACKAGE / "lib" / "marketing_cloud").glob("*.py")))
    aep = _blocks(sorted((PACKAGE / "lib" / "experience_platform").glob("*.py")))
    assert len(mc) > 500 and len(aep) > 500  # the walk saw both packages
    shared = mc & aep
    assert not shared, "move these into lib/http and call them from both clients:\n" + "\n\n".join(
        "\n".join(block) for block in sorted(shared)[:5])


def test_the_block_check_sees_a_shared_block(tmp_path: Path) -> None:
    body = "\n".join(f"x{i} = {i}" for i in range(6))
    (tmp_path / "a.py").write_text(f"a = 1\n{body}\n")
    (tmp_path / "b.py").write_text(f"# other\n\n{body}\nb = 2\n")
    assert _blocks([tmp_path / "a.py"]) & _blocks([tmp_path / "b.py"]) == {tuple(body.splitlines())}


def test_the_readme_stays_short_and_its_docs_links_resolve() -> None:
    root = PACKAGE.parent
    readme = (root / "README.md").read_text()
    assert len(readme.splitlines()) < 300, "move detail into docs/ and link it"
    linked = set(re.findall(r"\]\((docs/[^)#]+)", readme))
    assert len(linked) >= 5, linked  # the README points to the docs
    assert not [link for link in linked if not (root / link).exists()]
