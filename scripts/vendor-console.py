#!/usr/bin/env python3
"""Re-vendor the third-party browser code of the reviewer console (and of its accessibility test) from npm,
and verify it.

Each vendor directory holds a `vendor.lock.json` (package → pinned version, npm integrity, the files taken from
the package and where they go, and the few import rewrites a browser needs without a bundler) and a
`SHA256SUMS` of every vendored file. For each package this script runs `npm pack name@version` (npm's own
client and cache), refuses a tarball whose sha512 differs from the lock's integrity, extracts the listed files,
applies the rewrites, and then:

  scripts/vendor-console.py            check: the committed files equal what npm gives, and SHA256SUMS lists
                                       exactly those files with those hashes (exit 1 on any difference)
  scripts/vendor-console.py --write    write the files and SHA256SUMS (after changing a version in a lock:
                                       update its integrity from `npm view name@version dist.integrity`)

tests/console/test_vendor.py checks the committed files against SHA256SUMS without the network.
Needs: python3, npm, the npm registry.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR_DIRS = (ROOT / "graphql_api/console/vendor", ROOT / "tests/console/vendor")
LOCK, SUMS = "vendor.lock.json", "SHA256SUMS"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npm_pack(name: str, version: str, workdir: Path) -> Path:
    result = subprocess.run(
        ["npm", "pack", f"{name}@{version}", "--json", "--silent", "--pack-destination", str(workdir)],
        check=True, capture_output=True, text=True, cwd=workdir,
    )
    return workdir / json.loads(result.stdout)[0]["filename"]


def check_integrity(tarball: Path, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{tarball.name}: integrity {algorithm}-{actual} differs from the lock's {integrity}")


def vendored_files(vendor_dir: Path, workdir: Path) -> dict[str, bytes]:
    """Relative path in the vendor directory → content, exactly as npm's packages give them (plus rewrites)."""
    lock = json.loads((vendor_dir / LOCK).read_text())
    files: dict[str, bytes] = {}
    for name, spec in lock["packages"].items():
        tarball = npm_pack(name, spec["version"], workdir)
        check_integrity(tarball, spec["integrity"])
        with tarfile.open(tarball) as archive:
            for source, target in spec["files"].items():
                member = archive.extractfile(f"package/{source}")
                if member is None:
                    raise SystemExit(f"{name}@{spec['version']}: {source} is not a file")
                data = member.read()
                for old, new in spec.get("rewrite", {}).get(source, []):
                    if data.count(old.encode()) != 1:
                        raise SystemExit(f"{name}@{spec['version']}: {source} should contain {old!r} exactly once")
                    data = data.replace(old.encode(), new.encode())
                files[target] = data
    return files


def sums_text(files: dict[str, bytes]) -> str:
    return "".join(f"{sha256(data)}  {path}\n" for path, data in sorted(files.items()))


def committed_files(vendor_dir: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(vendor_dir)): path.read_bytes()
        for path in vendor_dir.rglob("*")
        if path.is_file() and path.name not in (LOCK, SUMS)
    }


def write(vendor_dir: Path, files: dict[str, bytes]) -> None:
    for path in committed_files(vendor_dir):
        (vendor_dir / path).unlink()
    for path, data in files.items():
        target = vendor_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for directory in sorted((p for p in vendor_dir.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()
    (vendor_dir / SUMS).write_text(sums_text(files))


def differences(vendor_dir: Path, files: dict[str, bytes]) -> list[str]:
    problems = []
    committed = committed_files(vendor_dir)
    for path in sorted(set(files) | set(committed)):
        if path not in committed:
            problems.append(f"missing: {path}")
        elif path not in files:
            problems.append(f"not from the lock: {path}")
        elif committed[path] != files[path]:
            problems.append(f"differs from npm: {path}")
    sums = vendor_dir / SUMS
    if not sums.exists() or sums.read_text() != sums_text(files):
        problems.append(f"{SUMS} does not list exactly the vendored files and their sha256")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write the vendored files and SHA256SUMS")
    args = parser.parse_args()
    if shutil.which("npm") is None:
        raise SystemExit("npm is needed (Node 20+)")
    failed = False
    for vendor_dir in VENDOR_DIRS:
        with tempfile.TemporaryDirectory() as workdir:
            files = vendored_files(vendor_dir, Path(workdir))
        where = vendor_dir.relative_to(ROOT)
        if args.write:
            write(vendor_dir, files)
            print(f"{where}: {len(files)} files written")  # noqa: T201
            continue
        problems = differences(vendor_dir, files)
        for problem in problems:
            print(f"{where}: {problem}", file=sys.stderr)  # noqa: T201
        failed |= bool(problems)
        if not problems:
            print(f"{where}: {len(files)} files match npm and {SUMS}")  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
