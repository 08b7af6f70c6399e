#!/usr/bin/python3
# make_resnet18.py — writes a seeded PyTorch classifier as ONNX plus an input and the logits
# PyTorch computes for it, so the C importer can be checked against PyTorch (test_onnx.c).
"""Usage: /usr/bin/python3 make_resnet18.py OUT_DIR [--arch resnet18|tiny] [--size N]
          [--in-ch C] [--classes K] [--batch N] [--opset V] [--seed S] [--name NAME]

Writes OUT_DIR/NAME.onnx, OUT_DIR/NAME.input.npy and OUT_DIR/NAME.logits.npy.
BatchNorm running statistics and affine parameters are randomised so that folding BN
into the convolutions is really exercised (fresh BN layers are identities)."""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision


class TinyNet(nn.Module):
    """A few channels, but the op mix of real backbones: strided conv + BN + ReLU, max
    pool, a residual block, a depthwise conv with ReLU6, a channel concat, average pool,
    dropout, global pool, flatten and a linear classifier."""

    def __init__(self, in_ch, classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        self.res = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8),
                                 nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, 1, 1, bias=False),
                                 nn.BatchNorm2d(8))
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 2, dilation=2, groups=8),
                                nn.BatchNorm2d(8), nn.ReLU6(inplace=True))
        self.pw = nn.Conv2d(16, 12, 1)
        self.pool = nn.AvgPool2d(2, 2)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(12, classes)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.res(x))
        x = torch.cat([x, self.dw(x)], 1)
        x = self.pool(torch.nn.functional.leaky_relu(self.pw(x), 0.1))
        x = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.drop(x))


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)


def build(args):
    torch.manual_seed(args.seed)
    if args.arch == "resnet18":
        model = torchvision.models.resnet18(weights=None, num_classes=args.classes)
        if args.in_ch != 3:
            model.conv1 = nn.Conv2d(args.in_ch, 64, 7, 2, 3, bias=False)
    else:
        model = TinyNet(args.in_ch, args.classes)
    gen = torch.Generator().manual_seed(args.seed + 1)
    with torch.no_grad():
        randomise_bn(model, gen)
    return model.eval()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--arch", choices=["resnet18", "tiny"], default="resnet18")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--in-ch", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--opset", type=int, default=13)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--name", default=None)
    args = p.parse_args()
    name = args.name or args.arch
    os.makedirs(args.out_dir, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    model = build(args)
    gen = torch.Generator().manual_seed(args.seed + 2)
    x = torch.randn(args.batch, args.in_ch, args.size, args.size, generator=gen)
    with torch.no_grad():
        logits = model(x)
    base = os.path.join(args.out_dir, name)
    # PRESERVE keeps BatchNormalization nodes (EVAL would fold them into the convs
    # during export, and the importer's folding would go untested).
    torch.onnx.export(model, x, base + ".onnx.tmp", opset_version=args.opset,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    np.save(base + ".input.npy", x.numpy().astype("<f4"))
    np.save(base + ".logits.npy", logits.numpy().astype("<f4"))
    os.replace(base + ".onnx.tmp", base + ".onnx")  # last: its presence means all is written
    return 0


if __name__ == "__main__":
    sys.exit(main())
