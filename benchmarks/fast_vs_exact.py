"""What the opt-in speed-ups change: features extracted exactly (the official pipelines: full JPEG decoding, fp32,
NCHW) against each fast path (JPEG draft decoding, bf16 autocast, channels_last, and all of them), for real
architectures with random weights, on a real image set, followed by the paper's probe on both.

    python benchmarks/fast_vs_exact.py --root ../shared/data/brain_mr/Training --out /tmp/fast_vs_exact \\
        --models resnet50 clip_vit_b16

Prints one line per (model, mode): images/s, the cosine similarity of each image's fast and exact features (mean,
min), the largest absolute difference, and the probe's hold-out accuracy (mean over the 5 fold models) with its
delta against exact in points. Features are kept under --out, so a rerun only computes what is missing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from medprobe.embed import extract_embeddings  # noqa: E402
from medprobe.manifest import build_manifest  # noqa: E402
from medprobe.models import build_encoder  # noqa: E402
from medprobe.probe import probe_linear_svc  # noqa: E402
from medprobe.registry import load_models  # noqa: E402
from medprobe.split import make_split  # noqa: E402
from medprobe.store import read_embeddings  # noqa: E402

MODES = {  # name -> (amp, jpeg_draft, channels_last)
    "exact": ("off", False, False),
    "jpeg_draft": ("off", True, False),
    "bf16": ("bf16", False, False),
    "channels_last": ("off", False, True),
    "all_fast": ("bf16", True, True),
}


def features(model_id: str, spec: dict, mode: str, manifest, out: Path, threads: int) -> tuple[np.ndarray, float]:
    path = out / f"{model_id}.{mode}.h5"
    seconds_file = path.with_suffix(".seconds")
    if not path.exists():
        random = {**spec, "weights": {**spec["weights"], "source": "random", "seed": 0}}
        encoder = build_encoder(model_id, random)
        if mode == "channels_last" and not encoder.channels_last:
            return None, 0.0
        amp, draft, channels_last = MODES[mode]
        torch.set_num_threads(threads)
        start = time.perf_counter()
        extract_embeddings(manifest, encoder, path, dataset_id="benchmark", class_names=sorted(set(manifest.label_name)),
                           manifest_sha256="benchmark", batch_size=32, num_workers=1, device="cpu",
                           amp=amp, jpeg_draft=draft, channels_last=channels_last)
        seconds_file.write_text(str(time.perf_counter() - start))
    return read_embeddings(path).features, float(seconds_file.read_text())


def probe_accuracy(x: np.ndarray, labels: np.ndarray, split) -> float:
    result = probe_linear_svc(x, labels, split["partition"].to_numpy(), split["fold"].to_numpy(),
                              n_classes=int(labels.max()) + 1, solver="torch", device="cpu")
    m = result.metrics
    return float(m[(m["eval"] == "holdout") & (m["metric"] == "accuracy")]["value"].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="an image folder (one sub-folder per class)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--models", nargs="+", default=["resnet50", "clip_vit_b16"])
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    registry = load_models(REPO / "config" / "models.yaml")
    manifest = build_manifest(args.root, threads=args.threads).samples
    labels = manifest["label"].to_numpy()
    split = make_split(manifest["sample_id"].tolist(), labels, seed=0)
    print(f"{len(manifest)} images under {args.root}; torch {torch.__version__}, {args.threads} threads")
    for model_id in args.models:
        exact, exact_seconds = features(model_id, registry[model_id], "exact", manifest, args.out, args.threads)
        exact_accuracy = probe_accuracy(exact, labels, split)
        print(f"{model_id} exact: {len(exact) / exact_seconds:.1f} images/s, probe accuracy "
              f"{100 * exact_accuracy:.2f} %")
        for mode in args.modes:
            if mode == "exact":
                continue
            fast, seconds = features(model_id, registry[model_id], mode, manifest, args.out, args.threads)
            if fast is None:
                print(f"{model_id} {mode}: not applicable")
                continue
            cosine = (fast * exact).sum(1) / (np.linalg.norm(fast, axis=1) * np.linalg.norm(exact, axis=1))
            accuracy = probe_accuracy(fast, labels, split)
            print(f"{model_id} {mode}: {len(fast) / seconds:.1f} images/s, cosine to exact mean {cosine.mean():.6f} "
                  f"min {cosine.min():.6f}, max |diff| {np.abs(fast - exact).max():.3g}, probe accuracy "
                  f"{100 * accuracy:.2f} % (delta {100 * (accuracy - exact_accuracy):+.2f} pp)")


if __name__ == "__main__":
    main()
