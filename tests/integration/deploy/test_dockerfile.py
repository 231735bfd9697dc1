"""The Dockerfile and .dockerignore, without a Docker engine (none runs here): the image's
shape (pinned slim base, multi-stage, non-root, health check, entry point the CLI accepts),
and a build of the package from exactly the files the build context sends, as the image's
`pip install .` would see them."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.integration.deploy.commands import check_gpulease_args, check_probe_args
from tests.integration.deploy.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BASE = "python:3.11-slim"


def instructions() -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = pending + line
        pending = ""
        keyword, _, args = whole.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    """Split the instructions into build stages (each starts with FROM)."""
    result: list[list[tuple[str, str]]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec form (a JSON list): {args}"
    return value


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (negated, regex) rules, with Docker's pattern syntax (** * ?)."""
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negated, re.compile(regex)))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Tell whether Docker leaves `path` (relative, with /) out of the build context: the last
    rule matching the path or one of its parent directories decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negated, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            result = not negated
    return result


def context_files() -> list[str]:
    """Return the repository files (tracked or not, as on disk) Docker would send."""
    rules = ignore_rules()
    files = []
    for folder, dirs, names in os.walk(ROOT):
        # Both are ignored (the rules are checked on them below); walking them is slow.
        dirs[:] = [d for d in dirs if d not in (".git", ".venv")]
        for name in names:
            rel = (Path(folder) / name).relative_to(ROOT).as_posix()
            if not ignored(rel, rules):
                files.append(rel)
    return files


def test_base_is_pinned_slim_python_and_the_build_is_multi_stage() -> None:
    args = [a for k, a in instructions() if k == "ARG" and a.startswith("PYTHON_IMAGE=")]
    assert args == [f"PYTHON_IMAGE={BASE}"]
    froms = [a for k, a in instructions() if k == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    runtime = stages()[-1]
    copies = [a for k, a in runtime if k == "COPY"]
    assert "--from=build /opt/venv /opt/venv" in copies, "the runtime stage takes the built virtualenv"
    assert not any("pip install" in a for k, a in runtime if k == "RUN"), "nothing is built in the runtime stage"


def test_runs_as_a_numeric_non_root_user_with_nothing_run_as_root_after() -> None:
    runtime = stages()[-1]
    users = [i for i, (k, _) in enumerate(runtime) if k == "USER"]
    assert users, "no USER: the image would run as root"
    uid, _, gid = runtime[users[-1]][1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and (not gid or gid.isdigit())
    assert not [a for k, a in runtime[users[-1]:] if k == "RUN"]


def test_entry_point_command_and_health_check_fit_together() -> None:
    runtime = dict(stages()[-1])
    assert exec_form(runtime["ENTRYPOINT"]) == ["gpulease"]
    command = exec_form(runtime["CMD"])
    check_gpulease_args(command)
    port = command[command.index("--port") + 1]
    assert runtime["EXPOSE"] == port
    check = runtime["HEALTHCHECK"]
    assert "--interval=" in check and "--timeout=" in check
    probe = exec_form(check.split("CMD", 1)[1].strip())
    assert probe[0] == "gpulease-probe"
    check_probe_args(probe[1:])
    assert probe[1:] == ["http", f"http://127.0.0.1:{port}/healthz"]
    copies = [a.split() for k, a in stages()[-1] if k == "COPY" and not a.startswith("--from")]
    assert ["deploy/probe.py", "/usr/local/bin/gpulease-probe"] in copies


def test_the_dependency_list_step_reads_pyproject() -> None:
    """The build installs dependencies from pyproject.toml before copying the code: run that step."""
    [step] = [a for k, a in stages()[0] if k == "RUN" and "tomllib" in a]
    script = step.split(">", 1)[0].strip()  # python -c "..." up to the redirect
    argv = shlex.split(script)
    assert argv[0] == "python"
    result = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, check=True)
    import tomllib

    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert result.stdout.split("\n")[:-1] == expected


def test_context_holds_every_copied_file_and_nothing_private() -> None:
    files = context_files()
    rules = ignore_rules()
    for keyword, args in instructions():
        if keyword != "COPY" or args.startswith("--from"):
            continue
        *sources, _target = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert not ignored(source, rules), f"COPY {source}: left out by .dockerignore"
    for leak in (".git/HEAD", ".venv/bin/python", "tests/conftest.py", "bench/__init__.py", ".env", "gpulease.db"):
        assert leak not in files, f"{leak} would be sent to the build"
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    assert ignored(".git/HEAD", rules) and ignored(".venv/bin/python", rules)
    assert ignored("config/.env", rules) and not ignored("config/settings.py", rules)


def test_the_package_builds_from_the_copied_files_alone(tmp_path: Path) -> None:
    """Build the wheel from the COPY sources of the build stage, filtered as Docker would;
    the migrations, data files and every subpackage must be in it."""
    rules = ignore_rules()
    context = tmp_path / "src"
    copied: list[str] = []
    for keyword, args in stages()[0]:
        if keyword != "COPY":
            continue
        *sources, _target = args.split()
        for source in sources:
            root = ROOT / source
            paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
            for path in paths:
                rel = path.relative_to(ROOT).as_posix()
                if not ignored(rel, rules):
                    (context / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, context / rel)
                    copied.append(rel)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
         str(context)], capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    [wheel] = (tmp_path / "dist").glob("gpulease-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {n.rsplit("/", 1)[0] for n in copied if n.endswith("/__init__.py")}
    missing = sorted(p for p in packages if f"{p}/__init__.py" not in names)
    assert not missing, f"subpackages left out of the wheel: {missing}"
    for needed in ("leases/migrations/script.py.mako", "leases/migrations/env.py", "config/examples/policy.yaml",
                   "sandbox/kube/clusters/default.yaml"):
        assert needed in names, needed
    versions = [n for n in copied if n.startswith("leases/migrations/versions/") and n.endswith(".py")]
    assert versions and set(versions) <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gpulease = gpulease.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
