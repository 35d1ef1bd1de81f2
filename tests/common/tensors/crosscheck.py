#!/usr/bin/env python3
"""Cross-checks fedjoint's weights container against Python, in both directions.

    crosscheck.py FILE EXPECTED_JSON [--write OUT]

1. Parses FILE (written by fedjoint) with nothing but `json` and `struct`: the 8-byte header
   length, the JSON header, the layout rules (8-aligned data section, tensors tiling the data
   section exactly), every tensor's values, and recomputes the "fedjoint.sha256" content digest.
   EXPECTED_JSON is {"digest": hex, "metadata": {...},
                     "tensors": {name: {"dtype": "F32", "shape": [...], "values": [...]}}}.
2. Decodes the tensors again with numpy, torch and the `safetensors` package when they are
   importable, and says which of them it could not check.
3. With --write OUT: writes a container of its own with json + struct only (tensors in name order,
   so not aligned, and a header with spaces and \\u escapes), digest computed here; the C++ test
   then opens it with full validation.

The content digest (see common/tensors/safetensors.h): SHA-256 over
    b"fedjoint-tensors-v1\\0" + u64(number of tensors)
    + for each tensor in ascending bytewise order of its UTF-8 name:
        u64(len(name)) name  u64(len(dtype)) dtype  u64(rank) i64(dim)...  u64(len(data)) data
with u64/i64 little-endian 64-bit integers. Exit status 0 when everything checked matched.
"""

import hashlib
import json
import math
import struct
import sys

DIGEST_KEY = "fedjoint.sha256"
# dtype -> (bytes per element, struct format); BF16 is decoded by hand.
DTYPES = {
    "F64": (8, "d"), "F32": (4, "f"), "F16": (2, "e"), "BF16": (2, None),
    "I64": (8, "q"), "I32": (4, "i"), "I16": (2, "h"), "I8": (1, "b"),
    "U8": (1, "B"), "BOOL": (1, "B"),
}


def fail(message):
    print("crosscheck FAILED: " + message)
    sys.exit(1)


def content_digest(tensors):
    """tensors: {name: (dtype, shape, data bytes)} -> lowercase hex SHA-256."""
    u64 = lambda x: struct.pack("<Q", x)
    sha = hashlib.sha256(b"fedjoint-tensors-v1\0" + u64(len(tensors)))
    for name in sorted(tensors, key=lambda n: n.encode("utf-8")):
        dtype, shape, data = tensors[name]
        encoded = name.encode("utf-8")
        sha.update(u64(len(encoded)) + encoded)
        sha.update(u64(len(dtype)) + dtype.encode("ascii"))
        sha.update(u64(len(shape)) + b"".join(struct.pack("<q", d) for d in shape))
        sha.update(u64(len(data)))
        sha.update(data)
    return sha.hexdigest()


def decode(dtype, data):
    size, fmt = DTYPES[dtype]
    count = len(data) // size
    if dtype == "BF16":
        halves = struct.unpack("<%dH" % count, data)
        return [struct.unpack("<f", struct.pack("<I", h << 16))[0] for h in halves]
    return list(struct.unpack("<%d%s" % (count, fmt), data))


def parse(raw):
    """json + struct parse with the same layout rules the C++ reader enforces."""
    if len(raw) < 8:
        fail("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", raw[:8])
    if n == 0 or 8 + n > len(raw):
        fail("bad header length %d" % n)
    if (8 + n) % 8 != 0:
        fail("data section starts at %d, not 8-aligned" % (8 + n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data = raw[8 + n:]
    tensors = {}
    covered = 0
    for name, entry in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        begin, end = entry["data_offsets"]
        if begin != covered:
            fail("tensor %r starts at %d, expected %d (overlap or gap)" % (name, begin, covered))
        size = DTYPES[entry["dtype"]][0] * math.prod(entry["shape"])
        if end - begin != size:
            fail("tensor %r: %d bytes for %s %s" % (name, end - begin, entry["dtype"], entry["shape"]))
        tensors[name] = (entry["dtype"], entry["shape"], bytes(data[begin:end]))
        covered = end
    if covered != len(data):
        fail("%d bytes after the last tensor" % (len(data) - covered))
    return metadata, tensors


def same_values(name, got, expected):
    got = [float(v) for v in got]
    expected = [float(v) for v in expected]
    if got != expected:
        fail("tensor %r: values %s, expected %s" % (name, got[:8], expected[:8]))


def check_with_numpy(tensors, expected, checked):
    try:
        import numpy as np
    except ImportError:
        checked.append("numpy: not installed, skipped")
        return
    kinds = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
             "I8": "i1", "U8": "u1", "BOOL": "?"}
    for name, (dtype, shape, data) in tensors.items():
        if dtype == "BF16":
            array = (np.frombuffer(data, "<u2").astype("<u4") << 16).view("<f4")
        else:
            array = np.frombuffer(data, kinds[dtype])
        array = array.reshape(shape)
        same_values(name, array.astype(np.float64).ravel().tolist(), expected[name]["values"])
    checked.append("numpy %s: values of %d tensors" % (np.__version__, len(tensors)))


def check_with_torch(path, tensors, expected, checked):
    try:
        import torch
    except ImportError:
        checked.append("torch: not installed, skipped")
        return
    kinds = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
             "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
             "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
    for name, (dtype, shape, data) in tensors.items():
        if len(data) == 0:  # frombuffer refuses empty buffers
            tensor = torch.empty(shape, dtype=kinds[dtype])
        else:
            tensor = torch.frombuffer(bytearray(data), dtype=kinds[dtype]).reshape(shape)
        if list(tensor.shape) != list(expected[name]["shape"]):
            fail("tensor %r: torch shape %s" % (name, list(tensor.shape)))
        same_values(name, tensor.double().flatten().tolist(), expected[name]["values"])
    checked.append("torch %s: frombuffer values of %d tensors" % (torch.__version__, len(tensors)))
    try:
        from safetensors.torch import load_file
    except ImportError:
        checked.append("safetensors: not installed, skipped")
        return
    loaded = load_file(path)
    if set(loaded) != set(expected):
        fail("safetensors loaded %s" % sorted(loaded))
    for name, tensor in loaded.items():
        if list(tensor.shape) != list(expected[name]["shape"]):
            fail("tensor %r: safetensors shape %s" % (name, list(tensor.shape)))
        same_values(name, tensor.double().flatten().tolist(), expected[name]["values"])
    import safetensors
    checked.append("safetensors %s: load_file of %d tensors" % (safetensors.__version__, len(loaded)))


def check(path, expected_path):
    with open(path, "rb") as f:
        raw = f.read()
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    checked = []
    metadata, tensors = parse(raw)
    if set(tensors) != set(expected["tensors"]):
        fail("tensor names %s, expected %s" % (sorted(tensors), sorted(expected["tensors"])))
    for name, (dtype, shape, data) in tensors.items():
        want = expected["tensors"][name]
        if dtype != want["dtype"] or shape != want["shape"]:
            fail("tensor %r is %s %s, expected %s %s" % (name, dtype, shape, want["dtype"], want["shape"]))
        same_values(name, decode(dtype, data), want["values"])
    checked.append("json+struct: layout and values of %d tensors" % len(tensors))
    if metadata != expected["metadata"]:
        fail("metadata %s, expected %s" % (metadata, expected["metadata"]))
    digest = content_digest(tensors)
    if metadata.get(DIGEST_KEY) != digest or digest != expected["digest"]:
        fail("digest: file says %s, recomputed %s, C++ said %s"
             % (metadata.get(DIGEST_KEY), digest, expected["digest"]))
    checked.append("digest recomputed: %s" % digest)
    check_with_numpy(tensors, expected["tensors"], checked)
    check_with_torch(path, tensors, expected["tensors"], checked)
    for line in checked:
        print("checked " + line)


# What --write produces; the C++ test holds the same table.
PY_TENSORS = [
    ("py.bf16", "BF16", [2], [1.0, -2.0]),
    ("py.bool", "BOOL", [3], [1, 0, 1]),
    ("py.empty", "F32", [0, 3], []),
    ("py.f16", "F16", [2, 2], [0.5, -1.5, 2.0, 0.0]),
    ("py.f32", "F32", [2, 3], [0.0, 0.25, 0.5, 0.75, 1.0, -1.25]),
    ("py.f64.scalar", "F64", [], [3.5]),
    ("py.i16", "I16", [2], [-300, 300]),
    ("py.i32", "I32", [1], [-70000]),
    ("py.i64", "I64", [3], [-1, 0, 2 ** 40]),
    ("py.i8", "I8", [2], [-128, 127]),
    ("py.u8.\u00df", "U8", [2], [7, 255]),
]


def encode(dtype, values):
    if dtype == "BF16":
        return b"".join(struct.pack("<H", struct.unpack("<I", struct.pack("<f", v))[0] >> 16)
                        for v in values)
    return struct.pack("<%d%s" % (len(values), DTYPES[dtype][1]), *values)


def write(path):
    tensors, header, offset = {}, {}, 0
    for name, dtype, shape, values in PY_TENSORS:
        data = encode(dtype, values)
        tensors[name] = (dtype, shape, data)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    digest = content_digest(tensors)
    header["__metadata__"] = {"writer": "crosscheck.py", DIGEST_KEY: digest}
    text = json.dumps(header).encode("utf-8")  # ", " / ": " separators, \u escapes
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name, _, _, _ in PY_TENSORS:
            f.write(tensors[name][2])
    print("wrote %s (%d tensors, digest %s)" % (path, len(tensors), digest))


def main(argv):
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--write"):
        print(__doc__)
        return 2
    check(argv[1], argv[2])
    if len(argv) == 5:
        write(argv[4])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
