"""The vendored third-party browser code is exactly what its lock and checksum list say (no network: the full
re-vendoring from npm is scripts/vendor-console.py)."""

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDOR_DIRS = [ROOT / "graphql_api/console/vendor", ROOT / "tests/console/vendor"]


def _sums(vendor: Path) -> dict[str, str]:
    lines = (vendor / "SHA256SUMS").read_text().splitlines()
    return {path: digest for digest, path in (line.split("  ", 1) for line in lines)}


@pytest.mark.parametrize("vendor", VENDOR_DIRS, ids=lambda path: str(path.relative_to(ROOT)))
def test_vendored_files_match_their_checksums(vendor):
    sums = _sums(vendor)
    present = {str(path.relative_to(vendor)) for path in vendor.rglob("*") if path.is_file() and path.name not in ("SHA256SUMS", "vendor.lock.json")}
    assert present == set(sums), f"not in SHA256SUMS: {present - set(sums)}; missing: {set(sums) - present}"
    changed = [path for path, digest in sums.items() if hashlib.sha256((vendor / path).read_bytes()).hexdigest() != digest]
    assert not changed, f"differ from SHA256SUMS (re-vendor with scripts/vendor-console.py): {changed}"


@pytest.mark.parametrize("vendor", VENDOR_DIRS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_package_is_pinned_and_ships_its_licence(vendor):
    lock = json.loads((vendor / "vendor.lock.json").read_text())["packages"]
    targets = [target for spec in lock.values() for target in spec["files"].values()]
    assert sorted(targets) == sorted(_sums(vendor))
    for name, spec in lock.items():
        assert spec["version"][0].isdigit() and spec["integrity"].startswith("sha512-"), name
        assert any(Path(target).name.startswith("LICENSE") for target in spec["files"].values()), f"{name} has no licence file"
