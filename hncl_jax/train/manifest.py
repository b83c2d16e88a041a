"""The checksum manifest of a checkpoint step: the SHA-256 and size of every file.

Orbax reads a flipped bit in an array chunk back silently (the chunks carry no
checksum), so once a step is committed `checkpointing.Checkpointer` writes
`<step>/checksums.json` (`write_manifest`) and compares the files with it before any
array of the step is read (`verify_manifest`).
"""

from __future__ import annotations

import hashlib
import json
import os

MANIFEST_FILE = "checksums.json"

__all__ = [
    "MANIFEST_FILE",
    "CheckpointCorruptError",
    "sha256_file",
    "step_files",
    "verify_manifest",
    "write_manifest",
]


class CheckpointCorruptError(ValueError):
    """A checkpoint's files differ from the checksums written when it was saved."""


def sha256_file(path: str) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def step_files(step_dir: str) -> dict[str, str]:
    """Relative path -> absolute path of every file of a step (the manifest excluded)."""
    out = {}
    for root, _, names in os.walk(step_dir):
        for name in names:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, step_dir)
            if rel != MANIFEST_FILE and not rel.endswith(".tmp"):
                out[rel] = full
    return out


def write_manifest(step_dir: str | os.PathLike[str]) -> str:
    """Writes `<step_dir>/checksums.json`: the SHA-256 and size of every file of the step.

    Args:
      step_dir: a finalized step directory (`.../checkpoints/<step>`).

    Returns:
      The manifest's path (written atomically: a temporary file, then a rename).
    """
    step_dir = os.fspath(step_dir)
    files = {
        rel: {"sha256": sha256_file(full), "bytes": os.path.getsize(full)}
        for rel, full in sorted(step_files(step_dir).items())
    }
    path = os.path.join(step_dir, MANIFEST_FILE)
    with open(path + ".tmp", "w") as fh:
        json.dump({"algorithm": "sha256", "files": files}, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(path + ".tmp", path)
    return path


def verify_manifest(step_dir: str | os.PathLike[str]) -> bool:
    """Compares a step's files with its `checksums.json`.

    Args:
      step_dir: a step directory.

    Returns:
      True if every file matches, False if the step has no manifest (unverified).

    Raises:
      CheckpointCorruptError: a file is missing, has another size or another hash, or
        the manifest itself cannot be read; the message lists the files.
    """
    step_dir = os.fspath(step_dir)
    path = os.path.join(step_dir, MANIFEST_FILE)
    if not os.path.exists(path):
        return False
    try:
        with open(path) as fh:
            expected = json.load(fh)["files"]
        if not isinstance(expected, dict):
            raise TypeError("'files' is not a dict")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointCorruptError(f"{path} cannot be read ({e})") from e
    found = step_files(step_dir)
    problems = []
    for rel, want in sorted(expected.items()):
        full = found.get(rel)
        if full is None:
            problems.append(f"{rel}: missing")
        elif os.path.getsize(full) != want.get("bytes"):
            problems.append(f"{rel}: {os.path.getsize(full)} bytes, {want.get('bytes')} saved")
        elif sha256_file(full) != want.get("sha256"):
            problems.append(f"{rel}: SHA-256 differs from the one saved")
    if problems:
        raise CheckpointCorruptError(
            f"checkpoint {step_dir} does not match its {MANIFEST_FILE} (its files changed "
            f"after the save): {'; '.join(problems[:10])}"
            + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        )
    return True
