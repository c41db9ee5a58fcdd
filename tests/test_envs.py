"""The conda envs (workflow/envs/*.yaml): pinned, named by every rule, and listing every package the rule's code imports.

Conda cannot solve here (no channels), so the checks are static: the rules and their `conda:` and `script:` come from
Snakemake itself; a rule's imports come from an AST walk of its script, followed through every medprobe module it
reaches. Imports inside functions count (they run when the function does), and so do the modules a registry loads
by name. A missing package would not show up in a local run either: Snakemake's script preamble appends the host's
sys.path to the env's, so a same-Python env silently borrows what it lacks from the environment that runs Snakemake.
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from functools import cache
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = REPO / "workflow" / "envs"
LOCK = REPO / "requirements" / "lock.txt"
SRC = REPO / "src"

# Top-level module -> its conda-forge package, where the two names differ (matplotlib-base: without the Qt backend
# the batch nodes never use).
CONDA_PACKAGE = {
    "PIL": "pillow",
    "matplotlib": "matplotlib-base",
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "open_clip": "open-clip-torch",
    "torch": "pytorch",
    "umap": "umap-learn",
    "cv2": "opencv",
    "skimage": "scikit-image",
}

# Not packages an env must hold: the script preamble imports Snakemake from the host's paths, and medprobe is the
# workflow's own library, put on sys.path by every script (MEDPROBE_LIBRARY, set by workflow/rules/common.smk).
PROVIDED = {"medprobe", "snakemake"}

# Imports of a name computed at run time, in the modules rules reach: what the name can be. A new one fails the tests
# until it is listed here. Registries: {module: its dict of loader modules}, every entry counts (config picks one).
DYNAMIC_REGISTRIES = {
    "medprobe.models": "LOADERS",  # model families, by the registry's `family`
    "medprobe.datasets": "ADAPTERS",  # dataset adapters, by the registry's `adapter`
}
DYNAMIC_MODULES = {
    "medprobe.embed": ("open_clip", "timm", "torchvision"),  # library_versions(): recorded when importable
}

# Imports guarded by `except ImportError`, in the modules rules reach: an env may lack them (the code goes on without).
# Listed so that a new one is a decision, not an accident.
OPTIONAL_IMPORTS = {
    "medprobe.embed": {"open_clip", "timm", "torchvision"},
    "medprobe.ocr": {"pytesseract"},  # require_engine(): a missing binding is a clear error naming the install step
}

PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*=[0-9][0-9A-Za-z.]*$")
PIP_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-\[\],]*==[0-9][0-9A-Za-z.]*$")
RULES_LINE = re.compile(r"^# rules: (.+)$", re.MULTILINE)


# --- the envs --------------------------------------------------------------------------------------------------------

def env_files() -> list[Path]:
    return sorted(ENVS.glob("*.yaml"))


@cache
def load_env(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def conda_pins(env: dict) -> dict[str, str]:
    """{conda package: version} of an env's conda dependencies (pip ones left out)."""
    return dict(dep.split("=", 1) for dep in env["dependencies"] if isinstance(dep, str))


def normalize(package: str) -> str:
    return re.sub(r"[-_.]+", "-", package).lower()


def missing_packages(needed: set[str], env: dict) -> set[str]:
    """The packages of `needed` (conda names) that the env lists neither as a conda nor as a pip dependency."""
    listed = {normalize(name) for name in conda_pins(env)}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            listed |= {normalize(re.split(r"[=<>\[]", p, maxsplit=1)[0]) for p in dep.get("pip", [])}
    return {p for p in needed if normalize(p) not in listed}


# --- a rule's imports ------------------------------------------------------------------------------------------------

def medprobe_file(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def catches_import_error(handler: ast.ExceptHandler) -> bool:
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, ast.Name) and t.id in ("ImportError", "ModuleNotFoundError") for t in types)


def is_dynamic_import(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in ("import_module", "__import__")


def scan(source: str, package: str = "") -> tuple[set[tuple[str, bool]], list[bool]]:
    """The absolute module names a source imports anywhere (functions too), each with whether an `except ImportError`
    guards it; and, per import of a computed name, whether it is guarded."""
    imports: set[tuple[str, bool]] = set()
    dynamic: list[bool] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Try):
            body_guarded = guarded or any(catches_import_error(h) for h in node.handlers)
            for child in node.body:
                visit(child, body_guarded)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, guarded)
            return
        if isinstance(node, ast.Import):
            imports.update((alias.name, guarded) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(parts + ([node.module] if node.module else []))
            else:
                module = node.module
            imports.add((module, guarded))
            imports.update((f"{module}.{alias.name}", guarded) for alias in node.names)
        elif isinstance(node, ast.Call) and is_dynamic_import(node):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                imports.add((arg.value, guarded))
            else:
                dynamic.append(guarded)
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(ast.parse(source), False)
    return imports, dynamic


@cache
def module_imports(module: str) -> tuple[frozenset[tuple[str, bool]], tuple[bool, ...]]:
    path = medprobe_file(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    imports, dynamic = scan(path.read_text(encoding="utf-8"), package)
    return frozenset(imports), tuple(dynamic)


def registry_modules(module: str, name: str) -> tuple[str, ...]:
    """The module names of a registry dict (`LOADERS = {"timm": "medprobe.models.timm_family", ...}`), read from the
    source rather than imported (importing medprobe.models imports torch)."""
    tree = ast.parse(medprobe_file(module).read_text(encoding="utf-8"))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign)
                                                                     else None)
        if isinstance(target, ast.Name) and target.id == name:
            return tuple(ast.literal_eval(node.value).values())
    raise AssertionError(f"{medprobe_file(module)}: no module-level {name} dict")


def dynamic_names(module: str) -> tuple[str, ...]:
    if module in DYNAMIC_REGISTRIES:
        return registry_modules(module, DYNAMIC_REGISTRIES[module])
    assert module in DYNAMIC_MODULES, f"{medprobe_file(module)} imports a computed name; list what it can be in " \
                                      "DYNAMIC_REGISTRIES or DYNAMIC_MODULES (tests/test_envs.py)"
    return DYNAMIC_MODULES[module]


def is_third_party(name: str) -> bool:
    top = name.split(".")[0]
    return top not in sys.stdlib_module_names and top not in PROVIDED


def medprobe_modules(name: str) -> list[str]:
    """The medprobe modules that importing `name` runs: the packages above it, then itself (when a module)."""
    parts = name.split(".")
    return [m for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if medprobe_file(m)]


def reach(script: Path, follow_guarded: bool) -> tuple[set[str], set[str]]:
    """(third-party top-level modules, medprobe modules) a script reaches; guarded imports only if follow_guarded."""
    third_party: set[str] = set()
    seen: set[str] = set()
    imports, dynamic = scan(script.read_text(encoding="utf-8"))
    assert not dynamic, f"{script}: imports a computed name; import it by name, or move it into medprobe"
    queue = list(imports)
    while queue:
        name, guarded = queue.pop()
        if guarded and not follow_guarded:
            continue
        if name.split(".")[0] != "medprobe":
            if is_third_party(name):
                third_party.add(name.split(".")[0])
            continue
        for module in medprobe_modules(name):
            if module in seen:
                continue
            seen.add(module)
            imports, dynamic = module_imports(module)
            queue.extend(imports)
            if dynamic:
                queue.extend((n, all(dynamic)) for n in dynamic_names(module))
    return third_party, seen


@cache
def rule_imports(script: str) -> tuple[set[str], set[str], set[str]]:
    """(required third-party modules, optional ones, medprobe modules reached) of a rule's script."""
    required, _ = reach(Path(script), follow_guarded=False)
    everything, modules = reach(Path(script), follow_guarded=True)
    return required, everything - required, modules


def required_packages(script: str) -> set[str]:
    return {CONDA_PACKAGE.get(m, m) for m in rule_imports(script)[0]}


# --- the envs themselves ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.name)
def test_env_parses_with_channels_and_pinned_dependencies(path):
    env = load_env(path)
    assert isinstance(env, dict), f"{path}: not a YAML mapping"
    assert env.get("channels") == ["conda-forge", "nodefaults"], f"{path}: channels should be [conda-forge, nodefaults]"
    deps = env.get("dependencies")
    assert deps, f"{path}: no dependencies"
    for dep in deps:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"{path}: unknown dependency section {dep}"
            for pip_dep in dep["pip"]:
                assert PIP_PIN.match(pip_dep), f"{path}: pip dependency {pip_dep!r} is not pinned (name==version)"
        else:
            assert PIN.match(str(dep)), f"{path}: dependency {dep!r} is not pinned (name=version)"
    assert "python" in conda_pins(env), f"{path}: pin python, the scripts run on the env's interpreter"


def test_a_package_has_one_version_across_envs():
    versions: dict[str, dict[str, str]] = {}
    for path in env_files():
        for package, version in conda_pins(load_env(path)).items():
            versions.setdefault(package, {})[path.name] = version
    split = {p: v for p, v in versions.items() if len(set(v.values())) > 1}
    assert not split, f"envs pin different versions of the same package: {split}"


def release(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.match(r"[0-9]+(\.[0-9]+)*", version).group().split("."))


def test_pins_satisfy_the_library_floors():
    """Each pin is at least the `>=` floor in pyproject.toml (its names are distributions: torch -> pytorch)."""
    tomllib = pytest.importorskip("tomllib")
    floors = {}
    for requirement in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        match = re.match(r"^([A-Za-z0-9_.\-]+)\s*>=\s*([0-9.]+)", requirement)
        if match:
            name, floor = match.groups()
            floors[normalize(CONDA_PACKAGE.get(name, name))] = release(floor)
    for path in env_files():
        for package, version in conda_pins(load_env(path)).items():
            floor = floors.get(normalize(package))
            if floor:
                pin = release(version)
                assert pin >= floor[:len(pin)], f"{path}: {package}={version} is below pyproject's >= {floor}"


# The packages whose version changes results or breaks medprobe's use of their internals: the conda envs and the pip
# lock (requirements/lock.txt, what `.ci/run` and the README install) must agree on them. pip name -> conda name.
MUST_AGREE = {"torch": "pytorch", "torchvision": "torchvision", "transformers": "transformers",
              "open-clip-torch": "open-clip-torch", "timm": "timm", "umap-learn": "umap-learn", "numba": "numba"}


def locked_versions() -> dict[str, str]:
    text = LOCK.read_text(encoding="utf-8")
    return {normalize(name): version for name, version in re.findall(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==([^\s;\\]+)",
                                                                    text, re.M)}


def test_conda_envs_and_the_pip_lock_agree_on_the_versions_that_matter():
    locked = locked_versions()
    pinned_somewhere = set()
    for pip_name, conda_name in MUST_AGREE.items():
        assert normalize(pip_name) in locked, f"{LOCK}: {pip_name} is not locked (run tools/lock.sh)"
        version = locked[normalize(pip_name)]
        for path in env_files():
            pin = conda_pins(load_env(path)).get(conda_name)
            if pin is None:
                continue
            pinned_somewhere.add(pip_name)
            assert version == pin or version.startswith(pin + "."), (
                f"{path}: {conda_name}={pin}, but {LOCK.relative_to(REPO)} has {pip_name}=={version}: change the env "
                f"or hold the lock back (requirements/constraints.txt, then tools/lock.sh)")
    assert pinned_somewhere == set(MUST_AGREE), f"no env pins {sorted(set(MUST_AGREE) - pinned_somewhere)}"


def test_the_lock_pins_every_package_with_hashes():
    """`pip install --require-hashes` refuses a lock with an unhashed or unpinned line: check it before CI does."""
    text = LOCK.read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[A-Za-z0-9])", text[text.index("\n\n") + 2:] if "\n\n" in text else text)
    for entry in entries:
        entry = "\n".join(line for line in entry.splitlines() if not line.lstrip().startswith("#")).strip()
        if not entry:
            continue
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*==\S+", entry), f"{LOCK}: not an exact pin: {entry[:80]}"
        assert "--hash=sha256:" in entry, f"{LOCK}: no hash for {entry.split()[0]}"
    assert "medprobe" not in locked_versions(), "the lock must not pin medprobe itself (installed with --no-deps -e .)"
    for line in text.splitlines():
        assert not line.startswith(("--find-links", "--extra-index-url", "--index-url", "-f ")), (
            f"{LOCK}: machine-specific index option {line!r} (tools/lock.sh leaves them out)")


# --- rules -> envs ---------------------------------------------------------------------------------------------------

def test_every_rule_that_runs_code_names_an_existing_env(rules, code_rules):
    assert {"all", "embeddings", "umap", "probes"} <= set(rules) - set(code_rules)
    for name, rule in code_rules.items():
        assert rule["conda"], f"rule {name}: no conda: directive (add one naming a workflow/envs/*.yaml)"
        env = Path(rule["conda"]).resolve()
        assert env.is_file(), f"rule {name}: conda env {rule['conda']} does not exist"
        assert env.parent == ENVS, f"rule {name}: conda env {env} is not under workflow/envs/"


def test_every_env_header_lists_the_rules_that_use_it(code_rules):
    users: dict[str, set[str]] = {path.name: set() for path in env_files()}
    for name, rule in code_rules.items():
        users[Path(rule["conda"]).name].add(name)
    for path in env_files():
        header = RULES_LINE.search(path.read_text(encoding="utf-8"))
        assert header, f"{path}: no '# rules: ...' header line"
        listed = {r.strip() for r in header.group(1).split(",")}
        used_by = sorted(users[path.name])
        assert listed == set(used_by), f"{path}: the header lists rules {sorted(listed)}; used by {used_by}"
        assert users[path.name], f"{path}: no rule uses this env; remove it"


def test_every_rule_env_lists_what_its_code_imports(code_rules):
    problems = []
    for name, rule in sorted(code_rules.items()):
        assert rule["script"], f"rule {name}: no script: directive to read its imports from"
        missing = missing_packages(required_packages(rule["script"]), load_env(Path(rule["conda"]).resolve()))
        if missing:
            problems.append(f"rule {name}: {Path(rule['conda']).name} lacks {', '.join(sorted(missing))}")
    assert not problems, "\n".join(problems)


# --- the import walk finds what it should ----------------------------------------------------------------------------

def test_probe_rule_needs_torch_through_medprobe_svm(code_rules):
    """The probe's torch solver imports medprobe.svm (and torch) inside a function: both must be found."""
    required, _, modules = rule_imports(code_rules["probe"]["script"])
    assert {"medprobe.probe", "medprobe.svm", "medprobe.store"} <= modules
    assert {"torch", "sklearn", "h5py", "numpy", "pandas"} <= required
    assert "pytorch" in required_packages(code_rules["probe"]["script"])
    assert missing_packages({"pytorch"}, {"dependencies": ["python=3.11", "scikit-learn=1.9"]}) == {"pytorch"}


def test_embed_rule_reaches_every_model_family(code_rules):
    _, _, modules = rule_imports(code_rules["embed"]["script"])
    families = set(registry_modules("medprobe.models", "LOADERS"))
    assert families and families <= modules
    assert {"open_clip", "timm", "transformers", "torchvision", "safetensors"} <= rule_imports(
        code_rules["embed"]["script"])[0]


def test_manifest_rule_reaches_every_dataset_adapter(code_rules):
    _, _, modules = rule_imports(code_rules["manifest"]["script"])
    assert set(registry_modules("medprobe.datasets", "ADAPTERS")) <= modules


def reached_modules(code_rules) -> set[str]:
    """The medprobe modules some rule reaches (CLI-only ones, such as medprobe.cli, need no env)."""
    return set().union(*(rule_imports(rule["script"])[2] for rule in code_rules.values()))


def test_every_dynamic_import_is_listed(code_rules):
    listed = set(DYNAMIC_REGISTRIES) | set(DYNAMIC_MODULES)
    found = {}
    for module in sorted(reached_modules(code_rules)):
        if module_imports(module)[1]:
            found[module] = dynamic_names(module) if module in listed else ()
    assert set(found) == listed, f"imports by computed name in {sorted(found)}; list what they import in DYNAMIC_*"
    for module, names in found.items():
        for name in names:
            assert name.split(".")[0] != "medprobe" or medprobe_file(name), f"{module}: {name} is not a module"


def test_every_guarded_import_is_listed(code_rules):
    found: dict[str, set[str]] = {}
    for module in sorted(reached_modules(code_rules)):
        imports, dynamic = module_imports(module)
        guarded = {name.split(".")[0] for name, g in imports if g and is_third_party(name)}
        if dynamic and all(dynamic):
            guarded |= {n.split(".")[0] for n in dynamic_names(module) if is_third_party(n)}
        if guarded:
            found[module] = guarded
    assert found == OPTIONAL_IMPORTS


def test_scan_sees_function_level_relative_and_guarded_imports():
    source = textwrap.dedent("""
        import numpy as np
        from . import store
        def f():
            import torch
            try:
                import cv2
            except ImportError:
                cv2 = None
            importlib.import_module(name)
    """)
    imports, dynamic = scan(source, package="medprobe")
    assert {("numpy", False), ("medprobe.store", False), ("torch", False), ("cv2", True)} <= imports
    assert dynamic == [False]
