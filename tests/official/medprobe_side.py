"""medprobe on the same release, the way the workflow runs it for a user whose weights are already downloaded:
the fetch_weights step (its record), a manifest of the images, the embed step (embed_dataset, hub offline), and the
HDF5 file read back. Run as `python medprobe_side.py <job.json>` with the user's cache environment; writes <out>.npz
(names, pixels = the encoder's preprocessing of each image, features = the HDF5 rows) and <out>.record.json.

job: model, spec (the registry entry), images (folder of an image-folder dataset), local_weights (or null),
     weights_dir (or null), network ("offline": HF_HUB_OFFLINE is set; "hub": a live endpoint that must not be asked)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

job = json.loads(Path(sys.argv[1]).read_text())
if job.get("weights_dir"):  # what workflow/scripts/fetch_weights.py and embed.py do first
    from medprobe.weights import cache_env

    os.environ.update(cache_env(job["weights_dir"]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import medprobe.embed as embed  # noqa: E402
from medprobe.imageio import load_rgb  # noqa: E402
from medprobe.manifest import build_manifest, write_manifest  # noqa: E402
from medprobe.store import read_embeddings  # noqa: E402
from medprobe.weights import fetch_weights, offline_env  # noqa: E402

out = Path(job["out"])
out.parent.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(int(job.get("threads", 2)))
model_id, spec = job["model"], job["spec"]

record_path = out.with_suffix(".weights.json")
record = fetch_weights(model_id, spec, record_path, local_path=job.get("local_weights"))

os.environ.update(offline_env())  # the embed rule runs with the hub offline
manifest = build_manifest(job["images"], check_classes=False)  # one folder of test images, not a dataset
manifest_path = out.with_suffix(".manifest.tsv")
write_manifest(manifest, manifest_path, out.with_suffix(".issues.tsv"))

built = {}
build_encoder = embed.build_encoder


def keep(*args, **kwargs):  # the encoder embed_dataset builds, to read its preprocessing back
    built["encoder"] = build_encoder(*args, **kwargs)
    return built["encoder"]


embed.build_encoder = keep
h5 = out.with_suffix(".h5")
embed.embed_dataset("official", model_id, spec, manifest_path, h5, weights_json=record_path, device="cpu",
                    threads=int(job.get("threads", 2)), amp=job.get("amp", "off"), jpeg_draft=False)
stored = read_embeddings(h5)
encoder = built["encoder"]
paths = manifest.samples["path"].tolist()
load = encoder.extra.get("load")  # a file-level loader (the chest X-ray releases) stands in for the PIL transform
if load is not None:
    pixels = torch.stack([load(Path(p).read_bytes(), p, False) for p in paths])
else:
    pixels = torch.stack([encoder.transform(load_rgb(p)) for p in paths])
np.savez(out, names=np.array([Path(p).name for p in paths]), pixels=pixels.float().numpy(),
         features=stored.features)
Path(str(out) + ".record.json").write_text(json.dumps({"record": record, "attrs": stored.attrs}, default=str))
