"""The package as it ships: the wheel carries the migrations, and an installed gateway needs no source tree.

The repository keeps the Alembic scripts in its top-level ``migrations/``; pyproject.toml ships that
directory inside the package as ``gateway.migrations``, where :func:`gateway.db.alembic_config`
finds them. Since that mapping makes pyproject.toml list the packages rather than discover them,
a test here also checks that the list matches the tree.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db import current_revision, head_revision
from tests.conftest import ROOT, _run_sync
from tests.test_cli import gateway_env

MIGRATIONS = ROOT / "migrations"


def _package_dirs(top: Path, name: str) -> set[str]:
    """The dotted names of ``top`` and of every directory under it that holds a file of its own."""
    names = set()
    for directory in [top, *(d for d in top.rglob("*") if d.is_dir())]:
        parts = directory.relative_to(top).parts
        if "__pycache__" in parts or any(part.startswith(".") for part in parts):
            continue
        if any(child.is_file() for child in directory.iterdir()):
            names.add(".".join([name, *parts]))
    return names


def test_pyproject_lists_every_package_and_ships_the_migrations() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"gateway.migrations": "migrations"}
    expected = _package_dirs(ROOT / "gateway", "gateway") | _package_dirs(MIGRATIONS, "gateway.migrations")
    listed = set(setuptools["packages"])
    # A directory of gateway/ missing from [tool.setuptools] packages would be left out of the wheel
    # (an editable install would not notice): add it there.
    assert sorted(expected - listed) == []
    assert sorted(listed - expected) == []


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(tmp_path: Path) -> Path:
    """The project's wheel, built (as the Dockerfile builds it) from a copy of the build inputs, so
    that no stale ``build/`` directory of the checkout gets into it and none is left behind."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("gateway", "migrations"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--wheel-dir",
        tmp_path / "dist",
        source,
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("smm_gateway-*.whl")
    return wheel


def install_wheel(wheel: Path, venv: Path) -> Path:
    """A fresh venv with ``wheel`` installed (no dependencies: this venv's site-packages are made
    visible through a .pth line, which adds the directory without running its .pth files, so the
    editable install of the checkout stays out). Its Python."""
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    python = venv / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=venv).stdout.strip()
    Path(purelib, "outer_site_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=venv,
    )
    return python


async def _revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


@pytest.mark.slow
def test_an_installed_wheel_migrates_a_database_from_anywhere(tmp_path: Path, empty_database: str) -> None:
    wheel = build_wheel(tmp_path)
    shipped = set(zipfile.ZipFile(wheel).namelist())
    versions = sorted(path.name for path in (MIGRATIONS / "versions").glob("*.py"))
    assert versions
    assert [name for name in versions if f"gateway/migrations/versions/{name}" not in shipped] == []
    assert {"gateway/migrations/env.py", "gateway/migrations/script.py.mako"} <= shipped
    # Data files the app reads: the customers' API page and its clients (create_app reads them), the console.
    static = {f"gateway/apidoc/static/{name}" for name in ("example.php", "example.py", "page.css")}
    assert static | {"gateway/console/static/index.html"} <= shipped

    python = install_wheel(wheel, tmp_path / "venv")
    elsewhere = tmp_path / "elsewhere"  # no source tree, no alembic.ini, no .env
    elsewhere.mkdir()
    env = {k: v for k, v in gateway_env(empty_database).items() if k != "PYTHONPATH"}

    where = run(
        python,
        "-c",
        "from gateway.db import migrations_directory; print(migrations_directory())",
        cwd=elsewhere,
        env=env,
    )
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "venv"), where.stdout

    done = run(python.parent / "gateway", "migrate", cwd=elsewhere, env=env)
    assert "migrated to head" in done.stdout
    head = head_revision()
    assert head is not None
    assert _run_sync(_revision(empty_database)) == head
