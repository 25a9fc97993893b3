"""Content hashes for caching and lineage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def file_md5(path: str | Path, chunk: int = 1 << 20) -> str:
    """MD5 of a file's bytes (DVC's hash, so it can be matched against dvc.lock)."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def stable_hash(*parts: object) -> str:
    """SHA-256 of JSON-serialisable parts (dict keys sorted), as hex."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def folder_md5(folder: str | Path) -> str:
    """A hash of a folder's files (relative names and bytes): identifies a model folder's weights."""
    digest = hashlib.md5()
    folder = Path(folder)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
