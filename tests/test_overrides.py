"""Library internals the service overrides were read against one version each (graphql_api.overrides): an
upgrade must be a deliberate act, so a different installed version fails here until the table is re-checked."""

from importlib.metadata import version

import pytest

from graphql_api.overrides import CHECKED


@pytest.mark.parametrize("library", CHECKED, ids=lambda library: library.distribution)
def test_installed_version_is_the_checked_one(library):
    installed = version(library.distribution)
    assert installed == library.version, (
        f"{library.distribution} {installed} is installed, but the overrides in {', '.join(library.overridden_in)} were "
        f"checked against {library.version}: re-read them (graphql_api/overrides.py says what), then update the table"
    )


def test_pyproject_bounds_admit_only_the_checked_minor_versions():
    """Every overridden library has an upper bound in pyproject.toml, so `uv lock --upgrade` cannot move past it."""
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    requirements = {Requirement(text).name: Requirement(text) for text in project["project"]["dependencies"]}
    for library in CHECKED:
        requirement = requirements.get(library.distribution)
        assert requirement is not None, f"{library.distribution} is not pinned in pyproject.toml"
        assert any(spec.operator == "<" for spec in requirement.specifier), f"{library.distribution} has no upper bound"
        assert requirement.specifier.contains(library.version), f"{library.distribution}: {requirement.specifier} excludes {library.version}"
