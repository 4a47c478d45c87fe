"""The one build step pyproject.toml cannot declare: the pages' browser libraries, into the wheel.

Building the wheel (``pip wheel .``, ``pip install .``) runs ``npm ci`` on ``package.json`` and
``package-lock.json`` in ``build/browser-assets/`` and copies into ``hub/http/vendor/`` of the
wheel only the files the pages load (every ``/static/vendor/…`` reference in
``hub/http/static/*.html``) and each of their packages' licence. Nothing of it is committed, and
the installed hub needs neither Node.js nor npm. Editable installs skip the step: they serve the
checkout's ``node_modules/`` (``scripts/setup``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PAGES = ROOT / "hub" / "http" / "static"
WORK = ROOT / "build" / "browser-assets"
LOCKFILES = ("package.json", "package-lock.json")
REFERENCE = re.compile(r"/static/vendor/([^\"'?#]+)")


def referenced_files() -> list[str]:
    """Paths under node_modules/ that the pages load, e.g. ``graphiql/graphiql.min.js``."""
    found: set[str] = set()
    for page in sorted(PAGES.glob("*.html")):
        found.update(REFERENCE.findall(page.read_text(encoding="utf-8")))
    return sorted(found)


def package_of(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:2]) if parts[0].startswith("@") else parts[0]


def npm_ci() -> Path:
    """``npm ci`` in the build folder; skipped when the same lockfile was installed there."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            "building the hub's wheel needs npm (Node.js): the explorer's and /journeys' "
            "browser libraries are installed from the npm registry at build time"
        )
    WORK.mkdir(parents=True, exist_ok=True)
    stamp = WORK / "installed.lock"
    lock = (ROOT / "package-lock.json").read_bytes()
    modules = WORK / "node_modules"
    if stamp.exists() and stamp.read_bytes() == lock and modules.is_dir():
        return modules
    for name in LOCKFILES:
        shutil.copyfile(ROOT / name, WORK / name)
    subprocess.run(
        [npm, "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=WORK,
        check=True,
    )
    stamp.write_bytes(lock)
    return modules


class BuildPyWithBrowserAssets(build_py):
    """``build_py`` plus the vendored browser files in ``hub/http/vendor/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        modules = npm_ci()
        target = Path(self.build_lib) / "hub" / "http" / "vendor"
        shutil.rmtree(target, ignore_errors=True)
        files = referenced_files()
        licences = {
            f"{package}/{licence.name}"
            for package in {package_of(path) for path in files}
            for licence in (modules / package).glob("LICEN[CS]E*")
        }
        for path in [*files, *sorted(licences)]:
            source = modules / path
            if not source.is_file():
                raise SystemExit(f"a page loads /static/vendor/{path}, which npm did not install")
            destination = target / path
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)


setup(cmdclass={"build_py": BuildPyWithBrowserAssets})
