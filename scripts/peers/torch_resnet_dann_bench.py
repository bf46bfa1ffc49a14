"""PyTorch peer of scripts/gpu-check.sh: DANN on ResNet-50 as TLlib builds it, trained on image folders with TLlib's
Office-31 transforms, reporting training images per second and peak GPU memory.

    python3 scripts/peers/torch_resnet_dann_bench.py --root DIR --source amazon --target webcam \
        [--iters 200] [--warmup 20] [--batch 32] [--workers 8] [--amp bf16|fp16|off]

The same work as dalab's side of the check (experiments written by gpu-check.sh): torchvision ResNet-50 (random
weights) without its fc; bottleneck Linear(2048, 256)-BatchNorm-ReLU; linear classifier; domain discriminator
Linear(256, 1024)-BN-ReLU-Linear(1024, 1024)-BN-ReLU-Linear(1024, 1) behind a gradient reversal layer; SGD lr 0.01
(backbone 0.001), momentum 0.9, Nesterov, weight decay 1e-3; batch `--batch` source + `--batch` target images decoded
and augmented by a DataLoader (ImageFolder, Resize((256, 256)) -> RandomResizedCrop(224) -> RandomHorizontalFlip ->
ToTensor -> Normalize(ImageNet)). `--amp`: torch.autocast with that dtype (fp16 with a GradScaler). Prints one JSON
line: images/s over `--iters` timed iterations (2·batch images each) after `--warmup`, and the peak GPU memory.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


def loader(path, batch, workers):
    tf = T.Compose([
        T.Resize((256, 256)), T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
        T.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    ])
    ds = torchvision.datasets.ImageFolder(path, transform=tf)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                       pin_memory=True, persistent_workers=workers > 0), len(ds.classes)


def forever(dl):
    while True:
        for b in dl:
            yield b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--source", default="amazon")
    ap.add_argument("--target", default="webcam")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off")
    args = ap.parse_args()
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    src, k = loader(f"{args.root}/{args.source}/images", args.batch, args.workers)
    tgt, _ = loader(f"{args.root}/{args.target}/images", args.batch, args.workers)
    backbone = torchvision.models.resnet50(weights=None)
    backbone.fc = nn.Identity()
    bottleneck = nn.Sequential(nn.Linear(2048, 256), nn.BatchNorm1d(256), nn.ReLU())
    head = nn.Linear(256, k)
    disc = nn.Sequential(nn.Linear(256, 1024), nn.BatchNorm1d(1024), nn.ReLU(), nn.Linear(1024, 1024),
                         nn.BatchNorm1d(1024), nn.ReLU(), nn.Linear(1024, 1))
    for m in (backbone, bottleneck, head, disc):
        m.to(dev).train()
    params = [{"params": backbone.parameters(), "lr": 0.001}, {"params": list(bottleneck.parameters())
              + list(head.parameters()) + list(disc.parameters()), "lr": 0.01}]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-3, nesterov=True)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp == "fp16")
    si, ti = forever(src), forever(tgt)
    start = None
    for it in range(args.warmup + args.iters):
        if it == args.warmup:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
        (xs, ys), (xt, _) = next(si), next(ti)
        xs, ys, xt = xs.to(dev, non_blocking=True), ys.to(dev, non_blocking=True), xt.to(dev, non_blocking=True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            f = bottleneck(backbone(torch.cat([xs, xt])))
            fs, _ = f.chunk(2)
            cls = F.cross_entropy(head(fs), ys)
            d = disc(GradReverse.apply(f, 1.0)).squeeze(1)
            lab = torch.cat([torch.ones(len(xs), device=dev), torch.zeros(len(xt), device=dev)])
            loss = cls + F.binary_cross_entropy_with_logits(d.float(), lab)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    torch.cuda.synchronize()
    secs = time.perf_counter() - start
    print(json.dumps({
        "side": "pytorch", "amp": args.amp, "batch": args.batch, "iters": args.iters, "workers": args.workers,
        "images_per_s": round(args.iters * 2 * args.batch / secs, 1), "seconds": round(secs, 2),
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20), "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
    }))


if __name__ == "__main__":
    main()
