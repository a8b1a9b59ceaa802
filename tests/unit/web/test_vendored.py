"""Every vendored file is the one VENDORED.md names (scripts/vendor-web.sh writes both):
a hand edit, a stray file or a missing one fails here."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import parley

VENDOR = Path(parley.__file__).parent / "web" / "vendor"
ROW = re.compile(r"^\| (?P<file>[^|]+?) \| (?P<sha>[0-9a-f]{64}) \|$")


def _listed() -> dict[str, str]:
    text = (VENDOR / "VENDORED.md").read_text()
    return {m["file"]: m["sha"] for m in map(ROW.match, text.splitlines()) if m}


def test_every_vendored_file_matches_its_recorded_hash() -> None:
    listed = _listed()
    on_disk = {
        p.relative_to(VENDOR).as_posix()
        for p in VENDOR.rglob("*")
        if p.is_file() and p.name != "VENDORED.md"
    }
    assert on_disk == set(listed), "VENDORED.md and vendor/ disagree: rerun scripts/vendor-web.sh"
    for name, sha in listed.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == sha, name


def test_each_library_names_its_version_and_licence() -> None:
    text = (VENDOR / "VENDORED.md").read_text()
    packages = ("preact", "htm", "@preact/signals", "marked", "dompurify", "highlight.js", "katex")
    for package in packages:
        row = rf"^\| {re.escape(package)} \| \d+\.\d+\.\d+ \| [^|]+ \|$"
        assert re.search(row, text, re.M), package
    assert (VENDOR / "licenses" / "dompurify.txt").is_file()
