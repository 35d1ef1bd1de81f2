#!/usr/bin/env python3
"""Export a torchvision ImageNet ResNet (18/34/50) state dict to a safetensors file for
fedjoint's encoder transfer (common/model/pretrained.h: LoadTorchvisionEncoder).

    python3 scripts/export_torchvision_encoder.py --depth 34 --out resnet34.safetensors

Needs torch + torchvision (downloads the weights into torch's hub cache on first use), or
--from-state-dict with a file saved by torch.save(model.state_dict(), path) on another machine.
Keys are written exactly as torchvision names them (conv1.weight, bn1.running_mean,
layer1.0.conv1.weight, layer2.0.downsample.1.weight, fc.weight, ...): the C++ loader maps them,
sums the first conv over RGB for grey MRI and copies every BatchNorm into each joint's norm.
The classifier (fc.*) is kept unless --drop-fc; the loader reports it as ignored.

Writes with safetensors.torch.save_file when the safetensors package is installed, otherwise
with a built-in writer of the same layout (8-byte little-endian header length, JSON header,
raw little-endian tensor data), so the file is readable by safetensors either way.
"""
import argparse
import json
import struct
import sys

import torch

# torchvision >= 0.13 weight enums; the first is the default.
WEIGHTS = {
    18: ("resnet18", "ResNet18_Weights", ["IMAGENET1K_V1"]),
    34: ("resnet34", "ResNet34_Weights", ["IMAGENET1K_V1"]),
    50: ("resnet50", "ResNet50_Weights", ["IMAGENET1K_V1", "IMAGENET1K_V2"]),
}

DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def load_torchvision(depth, weights_name):
    import torchvision  # noqa: F401 (imported here so --from-state-dict works without it)
    from torchvision import models

    builder_name, enum_name, choices = WEIGHTS[depth]
    weights_name = weights_name or choices[0]
    if weights_name not in choices:
        sys.exit("--weights for resnet%d must be one of %s" % (depth, ", ".join(choices)))
    builder = getattr(models, builder_name)
    enum = getattr(models, enum_name, None)
    if enum is not None:  # torchvision >= 0.13
        model = builder(weights=getattr(enum, weights_name))
    else:  # older torchvision: only the V1 weights exist
        if weights_name != "IMAGENET1K_V1":
            sys.exit("this torchvision only has IMAGENET1K_V1 weights")
        model = builder(pretrained=True)
    return model.state_dict(), "torchvision %s %s" % (builder_name, weights_name)


def write_safetensors(tensors, path, metadata):
    """The safetensors layout, for machines without the safetensors package."""
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in DTYPES:
            sys.exit("%s: dtype %s has no safetensors code" % (name, t.dtype))
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # align the data section to 8 bytes, as safetensors does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, choices=sorted(WEIGHTS), required=True)
    parser.add_argument("--weights", help="torchvision weight name (default IMAGENET1K_V1)")
    parser.add_argument("--from-state-dict", metavar="PTH",
                        help="read a torch.save'd state dict instead of asking torchvision")
    parser.add_argument("--drop-fc", action="store_true", help="leave out the classifier fc.*")
    parser.add_argument("--out", required=True, help="output .safetensors file")
    args = parser.parse_args()

    if args.from_state_dict:
        state = torch.load(args.from_state_dict, map_location="cpu")
        source = "state dict %s (resnet%d)" % (args.from_state_dict, args.depth)
    else:
        state, source = load_torchvision(args.depth, args.weights)

    tensors = {}
    for name, t in state.items():
        if args.drop_fc and name.startswith("fc."):
            continue
        # save_file refuses views sharing storage; contiguous copies are independent.
        tensors[name] = t.detach().cpu().contiguous().clone()
    if "conv1.weight" not in tensors or "layer1.0.conv1.weight" not in tensors:
        sys.exit("this does not look like a torchvision ResNet state dict (no conv1.weight / "
                 "layer1.0.conv1.weight)")
    bottleneck = "layer1.0.conv3.weight" in tensors
    if bottleneck != (args.depth == 50):
        sys.exit("--depth %d does not match the state dict (%s blocks)" %
                 (args.depth, "Bottleneck" if bottleneck else "BasicBlock"))
    metadata = {"format": "pt", "source": source, "architecture": "resnet%d" % args.depth}

    try:
        from safetensors.torch import save_file
    except ImportError:
        write_safetensors(tensors, args.out, metadata)
        writer = "built-in writer"
    else:
        save_file(tensors, args.out, metadata=metadata)
        writer = "safetensors"
    count = sum(t.numel() for n, t in tensors.items() if t.is_floating_point())
    print("wrote %s: %d tensors, %d float values, from %s (%s)" %
          (args.out, len(tensors), count, source, writer))


if __name__ == "__main__":
    main()
