"""Embedding throughput: images/s of the real extraction path (DataLoader decoding + preprocessing + the network +
the HDF5 writer) over real images, per model and setting, and the share of the machine's measured matmul peak that
the network reaches.

    python benchmarks/embed_throughput.py                                  # CPU: ResNet50, ViT-B/16 on brain_mr
    python benchmarks/embed_throughput.py --models vit_l_16 llava --device cuda --batch-sizes 64 128 256

Models are built with random weights through medprobe's own loaders (the speed does not depend on the weights).
Settings: fp32; fp32 + channels_last (CNNs); bf16 autocast; each with and without JPEG draft decoding. It also
reports how far JPEG draft decoding moves the preprocessed input.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from medprobe.embed import draft_size, extract_embeddings  # noqa: E402
from medprobe.imageio import load_rgb  # noqa: E402
from medprobe.models import build_encoder  # noqa: E402
from medprobe.registry import load_models  # noqa: E402


def random_weights(spec):
    return {**spec, "weights": {**spec["weights"], "source": "random", "seed": 0}}


def manifest_of(images: Path, n: int) -> pd.DataFrame:
    paths = sorted(p for p in images.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    step = max(1, len(paths) // n)
    paths = paths[::step][:n]
    return pd.DataFrame({"sample_id": [str(p) for p in paths], "path": [str(p) for p in paths],
                         "label": 0, "group": ""})


def forward_flops(encoder, device) -> float:
    """FLOPs of one image through the network (torch's FLOP counter: 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    size = encoder.preprocessing.get("size", 224)
    x = torch.zeros(1, 3, size, size, device=device)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused MHA kernel hides its matmuls from the counter
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            encoder.encode(x)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return float(counter.get_total_flops())


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """Measured FLOP/s of a large square matmul: the practical bound for these networks."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    repeats = 20 if device.type == "cuda" else 3
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n ** 3 * repeats / (time.perf_counter() - start)


def run_once(manifest, encoder, batch_size, workers, device, amp, draft) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        extract_embeddings(manifest, encoder, Path(tmp) / "e.h5", dataset_id="bench", class_names=["x"],
                           manifest_sha256="bench", batch_size=batch_size, num_workers=workers, device=device,
                           amp=amp, jpeg_draft=draft, channels_last=encoder.channels_last,
                           progress_file=open("/dev/null", "w"))
        return len(manifest) / (time.perf_counter() - start)


def draft_error(manifest, encoder, n=32) -> tuple[float, float]:
    """Mean and max |input(draft) - input(full decode)| over n images, in the model's normalised input units."""
    size = draft_size(encoder.preprocessing)
    diffs = []
    for path in manifest["path"].head(n):
        full = encoder.transform(load_rgb(path))
        drafted = encoder.transform(load_rgb(path, draft=size))
        diffs.append((full - drafted).abs())
    stacked = torch.stack(diffs)
    return float(stacked.mean()), float(stacked.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared" / "data" / "brain_mr" / "Training")
    parser.add_argument("--n", type=int, default=256, help="images per measurement")
    parser.add_argument("--models", nargs="+", default=["resnet50", "clip_vit_b16"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32])
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 1 on CPU, 8 on GPU)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--upscale", type=int, default=1,
                        help="re-encode the images k times larger (JPEG q95) first, to time draft decoding on "
                             "fundus- or dermoscopy-sized files")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    workers = args.workers if args.workers is not None else (8 if device.type == "cuda" else 1)
    registry = load_models(REPO / "config" / "models.yaml")
    manifest = manifest_of(args.images, args.n)
    if args.upscale > 1:
        from PIL import Image

        big = Path(tempfile.mkdtemp(prefix="medprobe-upscaled-"))
        for i, path in enumerate(manifest["path"]):
            image = load_rgb(path)
            target = big / f"{i:05d}.jpg"
            image.resize((image.width * args.upscale, image.height * args.upscale), Image.Resampling.BICUBIC).save(
                target, quality=95)
            manifest.loc[i, "path"] = str(target)
        print(f"# images re-encoded {args.upscale}x larger (JPEG q95) under {big}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{args.threads} threads"
    print(f"# {len(manifest)} images from {args.images}; device {name}; torch {torch.__version__}; "
          f"DataLoader workers {workers}")
    peaks = {"fp32": matmul_peak(device, torch.float32), "bf16": matmul_peak(device, torch.bfloat16)}
    print(f"# measured matmul peak: fp32 {peaks['fp32'] / 1e12:.2f} TFLOP/s, bf16 {peaks['bf16'] / 1e12:.2f} TFLOP/s")
    print("model\tsetting\tbatch\tjpeg_draft\timages_per_s\tnetwork_GFLOP_per_image\tshare_of_matmul_peak")
    for model_id in args.models:
        spec = random_weights(registry[model_id])
        cnn = build_encoder(model_id, spec).channels_last  # CNNs can run channels_last (embed.channels_last)
        settings = [("fp32", "off", False)] + ([("fp32+channels_last", "off", True)] if cnn else [])
        if build_encoder(model_id, spec).neural:
            settings.append(("bf16" + ("+channels_last" if cnn else ""), "bf16", cnn))
        for setting, amp, channels_last in settings:
            encoder = build_encoder(model_id, spec)
            encoder.channels_last = channels_last
            encoder.to(device)
            flops = forward_flops(encoder, device)
            for batch in args.batch_sizes:
                for draft in (False, True):
                    run_once(manifest.head(batch * 2), encoder, batch, workers, device, amp, draft)  # warm-up
                    rate = run_once(manifest, encoder, batch, workers, device, amp, draft)
                    peak = peaks["bf16" if amp == "bf16" else "fp32"]
                    print(f"{model_id}\t{setting}\t{batch}\t{draft}\t{rate:.1f}\t{flops / 1e9:.2f}\t"
                          f"{rate * flops / peak:.3f}", flush=True)
        mean_err, max_err = draft_error(manifest, build_encoder(model_id, spec))
        print(f"# {model_id}: JPEG draft moves the normalised input by mean {mean_err:.4f}, max {max_err:.3f}")


if __name__ == "__main__":
    main()
