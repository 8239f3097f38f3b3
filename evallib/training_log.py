"""Training logs: Keras ``CSVLogger``, Lightning ``CSVLogger`` (``metrics.csv``) and TensorBoard event files.

``read_training_log(path)`` returns ``{"epoch": [...], name: [...]}`` with one value per epoch
(NaN where a metric was not logged that epoch). TensorBoard files are read without TensorFlow:
the TFRecord framing and the few protobuf fields of ``Event`` that scalars use are decoded here.
"""

from __future__ import annotations

import csv
import math
import struct
from pathlib import Path

from .errors import DataError


def _per_epoch(rows, where):
    """``rows`` of ``(epoch, name, value)``: the last value of each name in each epoch."""
    epochs = sorted({e for e, _, _ in rows})
    if not epochs:
        raise DataError(f"report.training_log: {where}: expected logged values; got none")
    names = []
    for _, n, _ in rows:
        if n not in names:
            names.append(n)
    table = {n: {} for n in names}
    for e, n, v in rows:
        table[n][e] = v
    out = {"epoch": epochs}
    for n in names:
        out[n] = [table[n].get(e, math.nan) for e in epochs]
    return out


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "epoch" not in reader.fieldnames:
            raise DataError(f"report.training_log: {path}: expected a CSV with an 'epoch' column "
                            f"(Keras or Lightning CSVLogger); got columns {reader.fieldnames}")
        rows = []
        for r in reader:
            e = r.get("epoch", "")
            if e == "":
                continue
            for k, v in r.items():
                if k in ("epoch", "step") or v in ("", None):
                    continue
                try:
                    rows.append((int(float(e)), k, float(v)))
                except ValueError:
                    continue
    return _per_epoch(rows, path)


def _varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf):
    """Yield ``(field number, wire type, value)`` of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 1:
            val, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wire == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, wire, val


def _scalar_from_tensor(buf):
    dtype, floats, content = None, [], b""
    for num, wire, val in _fields(buf):
        if num == 1:
            dtype = val
        elif num == 4:
            content = val
        elif num == 5:
            floats += list(struct.unpack(f"<{len(val) // 4}f", val)) if wire == 2 else [struct.unpack("<f", val)[0]]
        elif num == 6 and wire == 2:  # double_val
            floats += list(struct.unpack(f"<{len(val) // 8}d", val))
    if floats:
        return floats[0]
    if content:
        return struct.unpack("<d" if dtype == 2 else "<f", content[:8 if dtype == 2 else 4])[0]
    return None


def _read_events(files):
    rows = []
    for f in files:
        data = Path(f).read_bytes()
        i = 0
        while i + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            record = data[i + 12:i + 12 + length]
            i += 12 + length + 4
            step = 0
            values = []
            for num, _, val in _fields(record):
                if num == 2:
                    step = val
                elif num == 5:  # summary
                    for vnum, _, v in _fields(val):
                        if vnum != 1:
                            continue
                        tag, x = None, None
                        for fnum, wire, fv in _fields(v):
                            if fnum == 1:
                                tag = fv.decode("utf-8", "replace")
                            elif fnum == 2 and wire == 5:
                                x = struct.unpack("<f", fv)[0]
                            elif fnum == 8:
                                x = _scalar_from_tensor(fv)
                        if tag is not None and x is not None:
                            values.append((tag, x))
            rows += [(int(step), tag, float(x)) for tag, x in values]
    return _per_epoch(rows, files[0] if files else "")


def read_training_log(path: str | Path) -> dict:
    """Read a training log (CSV file, TensorBoard event file, or a folder of event files)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob("*tfevents*"))
        if not files:
            raise DataError(f"report.training_log: {path}: expected TensorBoard event files (*tfevents*) in the "
                            f"folder; got none")
        return _read_events(files)
    if not path.exists():
        raise DataError(f"report.training_log: expected a CSV or TensorBoard log; got no file at {path}")
    if "tfevents" in path.name:
        return _read_events([path])
    return _read_csv(path)
