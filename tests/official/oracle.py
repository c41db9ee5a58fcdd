"""The official way to get an image feature from each release: the authors' own code (or, where it is not
installable, the library calls their code makes, step by step, cited), loading the weights from the caches a user's
download left, with the hub offline. Run as `python oracle.py <kind> <job.json>` in the environment that has that
code; writes <out>.npz with names (file names), pixels (the preprocessed tensors) and features.

Images are opened as the official evaluation scripts open them: PIL, .convert("RGB").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def rgb_images(paths):
    return [Image.open(p).convert("RGB") for p in paths]


def run(encode, preprocess, paths):
    pixels = torch.stack([preprocess(image) for image in rgb_images(paths)])
    with torch.inference_mode():
        return pixels, encode(pixels)


# ---------------------------------------------------------------- PyPI oracles, current libraries


def open_clip_tag(job):
    """open_clip.create_model_and_transforms(arch, pretrained=tag): open_clip downloads (here: finds in the cache)
    the tag's weights and builds the tag's preprocessing; the feature is encode_image(normalize=False). OpenAI's
    weights were trained with QuickGELU: the tag says so, and open_clip builds it only when asked
    (force_quick_gelu, or the '-quickgelu' model name); without, it logs a QuickGELU mismatch and runs GELU."""
    import open_clip

    quick_gelu = bool(open_clip.get_pretrained_cfg(job["arch"], job["tag"]).get("quick_gelu"))
    model, _, preprocess = open_clip.create_model_and_transforms(job["arch"], pretrained=job["tag"],
                                                                 force_quick_gelu=quick_gelu)
    model.eval()
    return run(lambda x: model.encode_image(x, normalize=False), preprocess, job["images"])


def open_clip_random(job):
    """open_clip.create_model_and_transforms(arch, pretrained=None) under torch.manual_seed(seed)."""
    import open_clip

    torch.manual_seed(job["seed"])
    model, _, preprocess = open_clip.create_model_and_transforms(job["arch"], pretrained=None)
    model.eval()
    return run(lambda x: model.encode_image(x, normalize=False), preprocess, job["images"])


def open_clip_hub(job):
    """BiomedCLIP's model card: open_clip.create_model_from_pretrained('hf-hub:...')."""
    import open_clip

    model, preprocess = open_clip.create_model_from_pretrained(f"hf-hub:{job['repo']}")
    model.eval()
    return run(lambda x: model.encode_image(x, normalize=False), preprocess, job["images"])


def timm_random(job):
    """timm.create_model(arch, pretrained=False, num_classes=0) under torch.manual_seed(seed), timm's own transform."""
    import timm
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(job["seed"])
    model = timm.create_model(job["arch"], pretrained=False, num_classes=0).eval()
    return run(model, create_transform(**resolve_data_config({}, model=model)), job["images"])


def timm_hub(job):
    """UNI's README (mahmoodlab/UNI@42715efc11722a496e0a67f3369505a8f277206c README_old.md L40-52):
    timm.create_model("hf-hub:MahmoodLab/UNI", pretrained=True, init_values=1e-5, dynamic_img_size=True) and
    create_transform(**resolve_data_config(model.pretrained_cfg, model=model))."""
    import timm
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(f"hf-hub:{job['repo']}", pretrained=True, init_values=1e-5,
                              dynamic_img_size=True).eval()
    transform = create_transform(**resolve_data_config(model.pretrained_cfg, model=model))
    return run(model, transform, job["images"])


def torchvision_weights(job):
    """torchvision.models.get_model(arch, weights=enum) (the weights from TORCH_HOME, where its first use put them),
    enum.transforms(); the classifier cut at the registry's feature point."""
    import torchvision

    enum = torchvision.models.get_weight(job["weights"])
    model = torchvision.models.get_model(job["arch"], weights=enum).eval()
    cut = job["cut"]
    if cut == "fc":
        model.fc = torch.nn.Identity()
    elif cut == "classifier[:5]":
        model.classifier = model.classifier[:5]
    elif cut == "heads":
        model.heads = torch.nn.Identity()
    return run(model, enum.transforms(), job["images"])


def clip_vision_with_projection(job):
    """LLM2CLIP (remote code not installable here; its modeling_clip.py is a fork of transformers' CLIP): transformers'
    CLIPVisionModelWithProjection.from_pretrained on the repository, get_image_features = image_embeds; the model
    card's CLIPImageProcessor.from_pretrained("openai/clip-vit-large-patch14-336"), the PIL implementation the card
    was written for (transformers 5: CLIPImageProcessorPil)."""
    from transformers import CLIPImageProcessorPil, CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection.from_pretrained(job["repo"]).eval()
    processor = CLIPImageProcessorPil.from_pretrained(job["processor_repo"])
    return run(lambda x: model(pixel_values=x).image_embeds,
               lambda image: processor(images=image, return_tensors="pt")["pixel_values"][0], job["images"])


def flair(job):
    """FLAIR is not installable (no PyPI release; the PyPI name is flairNLP's). Its image path, step by step as
    jusiro/FLAIR@d6652d53389ff49e5f73efaccf4246e9de88d1a3 flair/modeling/model.py writes it:
    preprocess_image (L232-263) on np.array(PIL image): float32, /255, HWC -> CHW, batch, size (int(h/s), int(w/s))
    with s = max(h, w)/512, torchvision Resize((h', w'), antialias=True), zero pad right and bottom;
    VisionModel (L309-356): torchvision resnet50 with fc = Identity; ProjectionLayer (L394-413): normalise, Linear
    (no bias), normalise. Weights: the checkpoint's vision_model.* (safetensors or torch.load)."""
    import torchvision
    from torchvision.transforms import Resize

    def preprocess_image(image):
        image = np.array(image)
        if image.dtype != np.float32:
            image = np.float32(image)
        if image.max() > 0:
            image /= 255
        image = np.transpose(image, (2, 0, 1)) if len(image.shape) > 2 else np.expand_dims(image, 0)
        image = np.expand_dims(image, 0)
        image = torch.tensor(image)
        sizes = image.shape[-2:]
        max_size = max(sizes)
        scale = max_size / 512
        image = Resize((int(image.shape[-2] / scale), int(image.shape[-1] / scale)), antialias=True)(image)
        image = torch.nn.functional.pad(image, (0, 512 - image.shape[-1], 0, 512 - image.shape[-2], 0, 0))
        return image.to(torch.float32)[0]

    path = Path(job["checkpoint"])
    if path.name.endswith(".safetensors") or path.read_bytes()[8:9] == b"{":
        from safetensors.torch import load_file
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu")
    resnet = torchvision.models.resnet50(weights=None)
    resnet.fc = torch.nn.Identity()
    resnet.load_state_dict({k[len("vision_model.model."):]: v for k, v in state.items()
                            if k.startswith("vision_model.model.")})
    weight = state["vision_model.projection_head_vision.projection.weight"]
    resnet.eval()

    def encode(x):
        features = torch.nn.functional.normalize(resnet(x), dim=-1)
        return torch.nn.functional.normalize(features @ weight.T, dim=-1)

    return run(encode, preprocess_image, job["images"])


def pixels(job):
    """medprobe's own baseline (no upstream): PIL's convert('L') (ITU-R 601-2 luma), resize to 32 x 32 bilinear,
    /255, flattened."""
    def preprocess(image):
        gray = image.convert("L").resize((32, 32), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(gray, dtype=np.float32).reshape(-1) / 255.0)

    return run(lambda x: x, preprocess, job["images"])


# ---------------------------------------------------------------- the LLaVA authors' package (llava-torch)


def llava(job):
    """LLaVA's loading and feature path, with the authors' classes (llava-torch 1.2.2.post1 = haotian-liu/LLaVA
    minus S2): the model class's from_pretrained on the repository (builder.load_pretrained_model, in fp32 instead of
    its fp16), the vision tower loaded as the builder loads it (vision_tower.load_model() unless already loaded),
    process_images(images, vision_tower.image_processor, model.config), then encode_images =
    mm_projector(vision_tower(images)); mean over the tokens (medprobe's pooling).
    S2 (not in llava-torch): CLIPVisionTowerS2 of haotian-liu/LLaVA@c121f0432da27facab705978f83c4ada465e46fd
    (llava/model/multimodal_encoder/clip_encoder.py L92-147): the image processor set to the largest scale, then
    s2wrapper.forward(vision_tower.forward, images, img_sizes=scales, max_split_size=scales[0]) (PyPI
    scaling-on-scales 0.1.0 ships s2wrapper identical to bfshi/scaling_on_scales HEAD)."""
    from llava.mm_utils import process_images

    if job["llm"] == "mistral":
        from llava.model.language_model.llava_mistral import LlavaMistralForCausalLM as Model
    else:
        from llava.model.language_model.llava_llama import LlavaLlamaForCausalLM as Model
    model = Model.from_pretrained(job["repo"], torch_dtype=torch.float32).eval()
    vision_tower = model.get_vision_tower()
    if not vision_tower.is_loaded:
        vision_tower.load_model()
    vision_tower.to(torch.float32)
    processor = vision_tower.image_processor
    scales = None
    if getattr(model.config, "s2", False):
        from s2wrapper import forward as multiscale_forward

        scales = sorted(int(x) for x in str(getattr(model.config, "s2_scales", "336,672,1008")).split(","))
        processor.size["shortest_edge"] = scales[-1]
        processor.crop_size["height"] = processor.crop_size["width"] = scales[-1]
    images = rgb_images(job["images"])
    with torch.inference_mode():
        x = process_images(images, processor, model.config)
        if scales:
            tokens = multiscale_forward(vision_tower.forward, x, img_sizes=scales, max_split_size=scales[0])
        else:
            tokens = vision_tower(x)
        features = model.get_model().mm_projector(tokens).mean(dim=1)
    return x, features


# ---------------------------------------------------------------- CONCH (PyPI conch-fork = mahmoodlab/CONCH)


def conch(job):
    """CONCH's README: create_model_from_pretrained('conch_ViT-B-16', checkpoint_path='hf_hub:MahmoodLab/conch'),
    encode_image(image, proj_contrast=False, normalize=False)."""
    from conch.open_clip_custom import create_model_from_pretrained

    model, preprocess = create_model_from_pretrained("conch_ViT-B-16", checkpoint_path=f"hf_hub:{job['repo']}")
    model.eval()
    return run(lambda x: model.encode_image(x, proj_contrast=False, normalize=False), preprocess, job["images"])


# ---------------------------------------------------------------- transformers 4.26.1 (CXR-CLIP)


def cxr_clip(job):
    """CXR-CLIP (no package; kakaobrain/cxr-clip@955ab931649cf4277dbeb96037d6e4e43e74d3cb) with the library version
    it pins, transformers 4.26.1: torch.load of the .tar (with omegaconf installed, as the evaluator loads it,
    cxrclip/evaluator.py L28-60); SwinModel(swin-tiny) loaded from image_encoder.image_encoder.*, Linear(768, 512)
    from image_projection.projection.*; encode_image = last_hidden_state[:, 0] (cxrclip/model/clip.py L46-54), then
    image_projection; the eval transform (configs/transform/default.yaml L11-15, cxrclip/data/data_utils.py L28-68):
    torchvision Resize(224), CenterCrop(224), ToTensor, Normalize(0.5, 0.5)."""
    import transformers
    from torchvision import transforms as T
    from transformers import SwinConfig, SwinModel

    assert transformers.__version__ == "4.26.1", transformers.__version__
    checkpoint = torch.load(job["checkpoint"], map_location="cpu", weights_only=False)
    state = checkpoint["model"]
    swin = SwinModel(SwinConfig(image_size=224, patch_size=4, embed_dim=96, depths=[2, 2, 6, 2],
                                num_heads=[3, 6, 12, 24], window_size=7))
    prefix = "image_encoder.image_encoder."
    swin.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    projection = torch.nn.Linear(768, 512)
    prefix = "image_projection.projection."
    projection.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    swin.eval()
    preprocess = T.Compose([T.Resize(224), T.CenterCrop(224), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
    return run(lambda x: projection(swin(pixel_values=x).last_hidden_state[:, 0]), preprocess, job["images"])


# ---------------------------------------------------------------- the chest X-ray packages (medclip, hi-ml-multimodal)
# The DLILP study (jusiro/DLILP@2c9d3011a04de994041ed05d15135d1e873c04b2) feeds every release its own loader
# (cxrvlms/pretraining/data/transforms.py load_image + norm_image), not the package's: the job's `pixels` are that
# loader's tensors (tests/test_cxr_models.py `authors`, a transcription), and the official model runs on them.


def study_pixels(job):
    stored = np.load(job["pixels"])
    assert [Path(p).name for p in job["images"]] == list(stored["names"]), "pixels and images out of order"
    return torch.from_numpy(stored["pixels"]).float()


def medclip(job):
    """medclip 0.0.3: MedCLIPVisionModel(medclip_checkpoint=folder), its own load_from_medclip (the vision_model.* keys
    of folder/pytorch_model.bin, strict=False: checked here key by key); the feature is the input of its projection
    model.fc (the pooled ResNet-50 feature) in MedCLIPVisionModel.forward. Its __init__ calls
    torchvision resnet50(pretrained=True): a random stand-in ImageNet file in a TORCH_HOME of this process only."""
    import os
    import tempfile

    import medclip as package
    import torchvision
    import transformers
    from medclip import MedCLIPVisionModel, constants

    assert (package.version, transformers.__version__) == ("0.0.3", "4.26.1"), package.version
    checkpoint = Path(job["checkpoint"])
    assert checkpoint.name == constants.WEIGHTS_NAME, checkpoint
    home = Path(tempfile.mkdtemp(prefix="imagenet-standin-"))
    name = Path(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url).name
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), home / "hub" / "checkpoints" / name)
    os.environ["TORCH_HOME"] = str(home)
    vision = MedCLIPVisionModel(medclip_checkpoint=str(checkpoint.parent)).eval()
    release = torch.load(checkpoint, map_location="cpu")
    for key, value in vision.state_dict().items():  # load_from_medclip is strict=False: nothing may stay ImageNet
        assert torch.equal(value, release[f"vision_model.{key}"]), f"{key} not loaded from {checkpoint}"
    seen = {}
    vision.model.fc.register_forward_hook(lambda module, inputs, output: seen.update(pooled=inputs[0]))
    x = study_pixels(job)
    with torch.inference_mode():
        vision(pixel_values=x)
    return x, seen["pooled"]


def biovil(job):
    """hi-ml-multimodal 0.2.2: get_biovil_image_encoder() (ImageModel(RESNET50, JOINT_FEATURE_SIZE,
    pretrained_model_path), torch.load + strict load_state_dict), its download replaced by the local file; the
    feature is ImageModel.forward(x).img_embedding (ImageEncoder: adaptive average pool of ResNetHIML's layer4)."""
    import health_multimodal
    from health_multimodal.image.model import pretrained

    assert health_multimodal.__version__ == "0.2.2", health_multimodal.__version__
    checkpoint = Path(job["checkpoint"])
    assert checkpoint.name == pretrained.BIOVIL_IMAGE_WEIGHTS_NAME, checkpoint
    pretrained._download_biovil_image_model_weights = lambda: checkpoint
    model = pretrained.get_biovil_image_encoder().eval()
    x = study_pixels(job)
    with torch.inference_mode():
        return x, model(x).img_embedding


KINDS = {f.__name__: f for f in (open_clip_tag, open_clip_random, open_clip_hub, timm_random, timm_hub,
                                 torchvision_weights, clip_vision_with_projection, flair, pixels, llava, conch,
                                 cxr_clip, medclip, biovil)}

if __name__ == "__main__":
    kind, job_path = sys.argv[1], Path(sys.argv[2])
    job = json.loads(job_path.read_text())
    torch.set_num_threads(int(job.get("threads", 2)))
    pixel_values, features = KINDS[kind](job)
    Path(job["out"]).parent.mkdir(parents=True, exist_ok=True)
    np.savez(job["out"], names=np.array([Path(p).name for p in job["images"]]),
             pixels=pixel_values.float().numpy(), features=features.float().numpy())
