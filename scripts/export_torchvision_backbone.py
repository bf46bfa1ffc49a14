"""Exports a torchvision feature extractor (ResNet-50, ResNet-101, ViT-B/16) to TorchScript for dalab's
`model.backbone: {kind: torchscript, path: ...}`.

    python3 scripts/export_torchvision_backbone.py resnet50 resnet50.pt             # ImageNet weights (downloads)
    python3 scripts/export_torchvision_backbone.py resnet50 resnet50.pt --random    # random weights (speed checks)

Needs torch and torchvision (e.g. `pip install torch torchvision`). What it does:
- the classifier is removed (ResNet `fc`, ViT `heads` become identities): the module maps [n, 3, 224, 224] to the
  pooled features, [n, 2048] for ResNet-50/101 and [n, 768] for ViT-B/16, as TLlib's backbones (`out_features`);
- every buffer (BatchNorm's running mean, variance and batch count) becomes a parameter that needs no gradient.
  libtorch keeps a TorchScript module's buffers to itself (tch lists only parameters), so dalab could neither save
  them with a trained model nor restore them when a run resumes; as parameters they are saved and restored like
  every other variable, and BatchNorm still updates them in training mode. dalab refuses a file that has buffers,
  naming them;
- the weights are torchvision's `IMAGENET1K_V1` (what `pretrained=True` gave, and what TLlib's ResNet-50 loads).
Then it loads the file back and checks the output size, that it has no buffers, and that training-mode BatchNorm
still moves the running statistics.
"""
import argparse

import torch
import torchvision


def build(arch, random):
    weights = None if random else "IMAGENET1K_V1"
    if arch in ("resnet50", "resnet101"):
        m = getattr(torchvision.models, arch)(weights=weights)
        m.fc = torch.nn.Identity()
        dim = 2048
    elif arch == "vit_b_16":
        m = torchvision.models.vit_b_16(weights=weights)
        m.heads = torch.nn.Identity()
        dim = 768
    else:
        raise SystemExit(f"unknown architecture {arch} (resnet50, resnet101, vit_b_16)")
    return m, dim


def buffers_as_parameters(model):
    """Every buffer of every submodule becomes a parameter with requires_grad=False (same tensor, same name)."""
    n = 0
    for module in model.modules():
        for name, buf in list(module._buffers.items()):
            if buf is None:
                continue
            del module._buffers[name]
            module.register_parameter(name, torch.nn.Parameter(buf, requires_grad=False))
            n += 1
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("arch", choices=["resnet50", "resnet101", "vit_b_16"])
    ap.add_argument("out")
    ap.add_argument("--random", action="store_true", help="random weights (no download), for speed checks")
    args = ap.parse_args()
    model, dim = build(args.arch, args.random)
    moved = buffers_as_parameters(model)
    model.eval()
    scripted = torch.jit.script(model)
    scripted.save(args.out)

    loaded = torch.jit.load(args.out)
    assert len(list(loaded.buffers())) == 0, "buffers left"
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        y = loaded(x)
    assert tuple(y.shape) == (2, dim), y.shape
    stats = [p for n, p in loaded.named_parameters() if n.endswith("running_mean")]
    if stats:
        before = stats[0].clone()
        loaded.train()
        with torch.no_grad():
            loaded(x)
        assert not torch.equal(before, stats[0]), "running statistics did not move in training mode"
    trainable = sum(p.numel() for p in loaded.parameters() if p.requires_grad)
    print(f"{args.out}: {args.arch}, output {dim}, {trainable} trainable values, {moved} buffers as parameters")


if __name__ == "__main__":
    main()
