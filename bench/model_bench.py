#!/usr/bin/env python3
"""Same benchmark as model_bench.cc, in Python PyTorch, with an identical architecture and
identical tensor names (check with --names and diff against `fedjoint_model_bench --names`).
Inference is measured as plain eager (the baseline), channels-last, and with the BatchNorms folded
the way common/model/folded_unet.cc folds them, in one run.

    /usr/bin/python3 bench/model_bench.py --threads 2 --batch 8 --size 128

Debian's python3-torch (1.13) is /usr/bin/python3; a pyenv python3 on PATH may lack torch.
"""
import argparse
import copy
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

JOINTS = [("ankle", 3), ("knee", 4), ("shoulder", 2)]  # name, structures (DefaultJoints)


def scaled(channels, width):
    return max(1, int(round(channels * width)))


class DomainBatchNorm2d(nn.Module):
    def __init__(self, channels, domains):
        super().__init__()
        self.norms = nn.ModuleDict({d: nn.BatchNorm2d(channels) for d in domains})

    def forward(self, x, sizes):
        norms = list(self.norms.values())
        present = [d for d, n in enumerate(sizes) if n > 0]
        if len(present) <= 1:
            return norms[present[0] if present else 0](x)
        groups = x.split(sizes, 0)
        return torch.cat([norms[d](groups[d]) for d, n in enumerate(sizes) if n], 0)


class Downsample(nn.Module):
    def __init__(self, cin, cout, stride, domains):
        super().__init__()
        self.add_module("0", nn.Conv2d(cin, cout, 1, stride, bias=False))
        self.add_module("1", DomainBatchNorm2d(cout, domains))

    def forward(self, x, sizes):
        return getattr(self, "1")(getattr(self, "0")(x), sizes)


class Block(nn.Module):
    def __init__(self, cin, planes, stride, bottleneck, domains):
        super().__init__()
        self.bottleneck = bottleneck
        out = planes * 4 if bottleneck else planes
        if bottleneck:
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.bn1 = DomainBatchNorm2d(planes, domains)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = DomainBatchNorm2d(planes, domains)
            self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
            self.bn3 = DomainBatchNorm2d(out, domains)
        else:
            self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = DomainBatchNorm2d(planes, domains)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = DomainBatchNorm2d(planes, domains)
        self.downsample = (Downsample(cin, out, stride, domains)
                           if stride != 1 or cin != out else None)

    def forward(self, x, sizes):
        y = F.relu(self.bn1(self.conv1(x), sizes))
        y = self.bn2(self.conv2(y), sizes)
        if self.bottleneck:
            y = self.bn3(self.conv3(F.relu(y)), sizes)
        identity = self.downsample(x, sizes) if self.downsample is not None else x
        return F.relu(y + identity)


class Encoder(nn.Module):
    LAYOUT = {18: (False, [2, 2, 2, 2]), 34: (False, [3, 4, 6, 3]), 50: (True, [3, 4, 6, 3])}

    def __init__(self, depth, width, domains):
        super().__init__()
        bottleneck, blocks = self.LAYOUT[depth]
        expansion = 4 if bottleneck else 1
        stem = scaled(64, width)
        self.channels = [stem]
        self.conv1 = nn.Conv2d(1, stem, 7, 2, 3, bias=False)
        self.bn1 = DomainBatchNorm2d(stem, domains)
        cin = stem
        for stage in range(4):
            planes = scaled(64 << stage, width)
            layer = nn.ModuleList()
            for b in range(blocks[stage]):
                layer.append(Block(cin, planes, 2 if stage > 0 and b == 0 else 1, bottleneck,
                                   domains))
                cin = planes * expansion
            setattr(self, "layer%d" % (stage + 1), layer)
            self.channels.append(cin)

    def forward(self, x, sizes):
        y = F.relu(self.bn1(self.conv1(x), sizes))
        features = [y]
        y = F.max_pool2d(y, 3, 2, 1)
        for stage in range(1, 5):
            for block in getattr(self, "layer%d" % stage):
                y = block(y, sizes)
            features.append(y)
        return features


class DecoderBlock(nn.Module):
    def __init__(self, cin, cout, domains):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn1 = DomainBatchNorm2d(cout, domains)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = DomainBatchNorm2d(cout, domains)

    def forward(self, x, sizes):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x), sizes))), sizes))


class Decoder(nn.Module):
    def __init__(self, enc, dec, domains, mode):
        super().__init__()
        self.mode = mode
        self.blocks = nn.ModuleList()
        cin = enc[4]
        for i in range(5):
            skip = enc[3 - i] if i < 4 else 0
            self.blocks.append(DecoderBlock(cin + skip, dec[i], domains))
            cin = dec[i]

    def forward(self, features, size, sizes):
        y = features[4]
        for i in range(5):
            target = features[3 - i].shape[2:] if i < 4 else size
            if self.mode == "bilinear":
                y = F.interpolate(y, size=tuple(target), mode="bilinear", align_corners=False)
            else:
                y = F.interpolate(y, size=tuple(target), mode="nearest")
            if i < 4:
                y = torch.cat([y, features[3 - i]], 1)
            y = self.blocks[i](y, sizes)
        return y


class Projection(nn.Module):
    def __init__(self, cin, hidden, out):
        super().__init__()
        self.fc1 = nn.Linear(cin, hidden)
        self.fc2 = nn.Linear(hidden, out)

    def forward(self, f):
        return F.normalize(self.fc2(F.relu(self.fc1(f.mean((2, 3))))), dim=1)


class UNet(nn.Module):
    def __init__(self, depth=18, width=0.5, variant="domain", mode="nearest", stages=(2, 3, 4)):
        super().__init__()
        self.variant = variant
        domains = [j for j, _ in JOINTS] if variant == "domain" else ["shared"]
        self.encoder = Encoder(depth, width, domains)
        dec = [max(8, scaled(c, width)) for c in (256, 128, 64, 32, 16)]
        self.decoder = Decoder(self.encoder.channels, dec, domains, mode)
        if variant == "domain":
            self.heads = nn.ModuleDict({j: nn.Conv2d(dec[4], 1 + s, 1) for j, s in JOINTS})
        else:
            self.head = nn.Conv2d(dec[4], 1 + sum(s for _, s in JOINTS), 1)
        self.stages = list(stages)
        self.projections = nn.ModuleDict({
            ("stem" if s == 0 else "layer%d" % s): Projection(self.encoder.channels[s], 256, 128)
            for s in self.stages})
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for head in (self.heads.values() if variant == "domain" else [self.head]):
            nn.init.xavier_uniform_(head.weight)

    def forward(self, x, joints):
        n = len(JOINTS)
        sizes = torch.bincount(joints, minlength=n).tolist()
        order = torch.sort(joints, stable=True).indices
        permuted = not torch.equal(order, torch.arange(len(joints)))
        xs = x.index_select(0, order) if permuted else x
        norm_sizes = sizes if self.variant == "domain" else [x.shape[0]]
        features = self.encoder(xs, norm_sizes)
        inverse = torch.argsort(order)
        embeddings = []
        for s, proj in zip(self.stages, self.projections.values()):
            z = proj(features[s])
            embeddings.append(z.index_select(0, inverse) if permuted else z)
        y = self.decoder(features, x.shape[2:], norm_sizes)
        logits, start = [], 0
        heads = list(self.heads.values()) if self.variant == "domain" else [self.head] * n
        for j in range(n):
            logits.append(heads[j](y.narrow(0, start, sizes[j])) if sizes[j] else None)
            start += sizes[j]
        return logits, embeddings


def fold(model, joint, channels_last=False):
    """The same BatchNorm folding as common/model/folded_unet.cc: returns forward(x) -> logits of
    `joint`'s head, with every eval-mode BatchNorm absorbed into the convolution before it."""
    domain = JOINTS[joint][0] if model.variant == "domain" else "shared"

    def layout(t):
        # NHWC strides even with one channel (input, stem weights), where .contiguous(
        # memory_format=torch.channels_last) keeps NCHW strides and oneDNN then runs the stem,
        # the max-pooling and the first skip NCHW (see folded_unet.cc).
        if not channels_last:
            return t.contiguous()
        if t.is_contiguous(memory_format=torch.channels_last) and t.stride(1) == 1:
            return t
        return torch.empty(t.shape, dtype=t.dtype, memory_format=torch.channels_last).copy_(t)

    def conv(c, bn=None):
        w = c.weight.detach().double()
        b = c.bias.detach().double() if c.bias is not None else torch.zeros(w.shape[0]).double()
        if bn is not None:
            n = bn.norms[domain]
            scale = n.weight.double() / (n.running_var.double() + n.eps).sqrt()
            w = w * scale.view(-1, 1, 1, 1)
            b = n.bias.double() + (b - n.running_mean.double()) * scale
        return (layout(w.float()), b.float(), c.stride, c.padding)

    def run(c, x):
        return F.conv2d(x, c[0], c[1], c[2], c[3])

    enc = model.encoder
    stem = conv(enc.conv1, enc.bn1)
    stages = []
    for s in range(1, 5):
        blocks = []
        for blk in getattr(enc, "layer%d" % s):
            ds = blk.downsample
            blocks.append((conv(blk.conv1, blk.bn1), conv(blk.conv2, blk.bn2),
                           conv(blk.conv3, blk.bn3) if blk.bottleneck else None,
                           conv(getattr(ds, "0"), getattr(ds, "1")) if ds is not None else None))
        stages.append(blocks)
    dec = [(conv(b.conv1, b.bn1), conv(b.conv2, b.bn2)) for b in model.decoder.blocks]
    head = conv(list(model.heads.values())[joint] if model.variant == "domain" else model.head)
    mode = model.decoder.mode

    def forward(x):
        x = layout(x)
        y = run(stem, x).relu_()
        features = [y]
        y = F.max_pool2d(y, 3, 2, 1)
        for blocks in stages:
            for c1, c2, c3, ds in blocks:
                out = run(c2, run(c1, y).relu_())
                if c3 is not None:
                    out = run(c3, out.relu_())
                out.add_(run(ds, y) if ds is not None else y).relu_()
                y = out
            features.append(y)
        for i in range(5):
            target = tuple(features[3 - i].shape[2:] if i < 4 else x.shape[2:])
            if mode == "bilinear":
                y = F.interpolate(y, size=target, mode="bilinear", align_corners=False)
            else:
                y = F.interpolate(y, size=target, mode="nearest")
            if i < 4:
                y = torch.cat([y, features[3 - i]], 1)
            y = run(dec[i][1], run(dec[i][0], y).relu_()).relu_()
        return run(head, y)

    return forward


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--variant", default="domain", choices=["domain", "shared"])
    parser.add_argument("--upsample", default="nearest", choices=["nearest", "bilinear"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--infer-batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=20, help="0 skips training")
    parser.add_argument("--infer-batches", type=int, default=20,
                        help="batches per round and configuration")
    parser.add_argument("--infer-rounds", type=int, default=3,
                        help="rounds over all inference configurations")
    parser.add_argument("--names", help="write 'name shape' of every tensor to this file")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = UNet(args.depth, args.width, args.variant, args.upsample)
    if args.names:
        with open(args.names, "w") as f:
            for name, t in list(model.named_parameters()) + list(model.named_buffers()):
                f.write("%s [%s]\n" % (name, ", ".join(str(s) for s in t.shape)))
    parameters = sum(p.numel() for p in model.parameters())

    n = len(JOINTS)
    x = torch.randn(args.batch, 1, args.size, args.size)
    ids = torch.arange(args.batch) % n
    targets = [torch.randint(0, 2, (int((ids == j).sum()), args.size, args.size))
               for j in range(n)]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step():
        optimizer.zero_grad()
        logits, embeddings = model(x, ids)
        loss = torch.zeros(())
        for j in range(n):
            if logits[j] is not None:
                loss = loss + F.cross_entropy(logits[j], targets[j])
        for z in embeddings:
            loss = loss + 0.1 * z.mean()
        loss.backward()
        optimizer.step()

    for _ in range(3 if args.train_steps > 0 else 0):
        step()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.train_steps):
        step()
    train_rate = args.batch * args.train_steps / max(time.perf_counter() - start, 1e-9)
    train_cpu = args.batch * args.train_steps / max(time.process_time() - cpu, 1e-9)

    # Inference, one joint per batch, in the configurations of model_bench.cc; they take turns
    # (--infer-rounds) and each reports its median round. Plain eager under inference_mode is the
    # baseline the C++ figures are compared with.
    model.eval()
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    xi = torch.randn(args.infer_batch, 1, args.size, args.size)
    xi_cl = xi.contiguous(memory_format=torch.channels_last)
    zeros = torch.zeros(args.infer_batch, dtype=torch.long)
    with torch.no_grad():
        folded = fold(model, 0)
        folded_cl = fold(model, 0, channels_last=True)
        reference = model(xi, zeros)[0][0]
        error = ((folded(xi) - reference).abs().max() / reference.abs().max()).item()
    configs = [
        ("eager     NCHW          no_grad", torch.no_grad, lambda: model(xi, zeros)),
        ("eager     NCHW          inference_mode", torch.inference_mode, lambda: model(xi, zeros)),
        ("eager     channels-last inference_mode", torch.inference_mode,
         lambda: model_cl(xi_cl, zeros)),
        ("folded    NCHW          inference_mode", torch.inference_mode, lambda: folded(xi)),
        ("folded    channels-last inference_mode", torch.inference_mode,
         lambda: folded_cl(xi_cl)),
    ]
    rates = {name: ([], []) for name, _, _ in configs}

    def measure(name, guard, run, batches):
        with guard():
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(batches):
                run()
            rates[name][0].append(args.infer_batch * batches / (time.perf_counter() - start))
            rates[name][1].append(args.infer_batch * batches / (time.process_time() - cpu))

    for name, guard, run in configs:  # warm-up
        measure(name, guard, run, 2)
        rates[name] = ([], [])
    for _ in range(args.infer_rounds):
        for name, guard, run in configs:
            measure(name, guard, run, args.infer_batches)

    def median(values):
        return statistics.median_low(values)

    base = configs[1][0]
    infer_rate, infer_cpu = median(rates[base][0]), median(rates[base][1])

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("model: depth %d width %.2f %s, %d parameters (torch %s)" %
          (args.depth, args.width, args.variant, parameters, torch.__version__))
    print("threads %d" % torch.get_num_threads())
    if args.train_steps > 0:
        print("train: batch %d, %.2f slices/s, %.2f slices per CPU-second" %
              (args.batch, train_rate, train_cpu))
    print("infer: batch %d, %.2f slices/s, %.2f slices per CPU-second" %
          (args.infer_batch, infer_rate, infer_cpu))
    print("inference configurations (median of %d rounds of %d batches of %d):" %
          (args.infer_rounds, args.infer_batches, args.infer_batch))
    for name, _, _ in configs:
        rate = median(rates[name][0])
        print("  infer %-45s %8.2f slices/s  %7.2f slices per CPU-second  %.2fx" %
              (name, rate, median(rates[name][1]), rate / infer_rate))
    print("folded vs eager logits: max relative difference %.1e" % error)
    print("peak RSS %.0f MB" % rss)


if __name__ == "__main__":
    main()
