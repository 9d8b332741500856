"""What offline W&B runs hold, read without a W&B server (``offline_runs("<sweep dir>")``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_offline_run(path: str | Path) -> dict[str, Any]:
    """What an offline W&B run file (``offline-run-*/run-<id>.wandb``) records: run id, name, group,
    tags, job type, the config keys and the artifacts logged, read without a W&B server.

    The file is W&B's LevelDB-style record log (a 7-byte header ``:W&B`` + magic + version, then
    32 KiB blocks of records ``crc32 (4) | length (2) | type (1) | data``, a record split over
    blocks as FIRST / MIDDLE / LAST) of ``wandb_internal_pb2.Record`` protobufs.
    """
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    block, pos, pending = 32768, 7, b""
    out: dict[str, Any] = {"id": None, "name": None, "group": None, "tags": [], "job_type": None,
                           "config": {}, "artifacts": [], "file": str(path)}
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left  # zero fill to the end of the block
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (2, 3):  # FIRST, MIDDLE: the record goes on in the next block
            continue
        rec = pb.Record()
        rec.ParseFromString(pending)
        pending = b""
        which = rec.WhichOneof("record_type")
        if which == "run":
            out.update(id=rec.run.run_id, name=rec.run.display_name, group=rec.run.run_group or None,
                       tags=list(rec.run.tags), job_type=rec.run.job_type or None)
            out["config"].update({u.key: u.value_json for u in rec.run.config.update})
        elif which == "config":
            out["config"].update({u.key: u.value_json for u in rec.config.update})
        elif which == "artifact":
            out["artifacts"].append({"name": rec.artifact.name, "type": rec.artifact.type,
                                     "aliases": list(rec.artifact.aliases),
                                     "references": [m.ref for m in rec.artifact.manifest.contents if m.ref],
                                     "metadata": rec.artifact.metadata})
    return out


def offline_runs(folder: str | Path) -> list[dict[str, Any]]:
    """Every offline W&B run under ``folder`` (searched recursively), sorted by path."""
    return [read_offline_run(p) for p in sorted(Path(folder).rglob("offline-run-*/run-*.wandb"))]
