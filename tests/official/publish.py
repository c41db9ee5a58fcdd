"""Write a model's release the way its authors published it: the official code builds the model under a fixed seed,
and its weights are saved in the release's own layout (file names, shards and index, key prefixes, wrapper dicts,
pickle or safetensors). Run as `python publish.py <kind> <job.json>` in the environment that has the official code;
prints nothing, writes the files and `<out>/release.json`:

  {"repos": {repo: {file name: path}}, "plain": {file name: path}, "local": {file name: path}}

repos are served by the local hub, plain files by its torch.hub route, local files stand for a download by hand.
Where a part of the release cannot affect image features (a language model, a text tower), it is built small; its
key names are still the release's.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import torch

CLIP_L_336 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                  image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu")
SMALL_BERT = dict(vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                  max_position_embeddings=512, type_vocab_size=2, pad_token_id=0, hidden_act="gelu",
                  layer_norm_eps=1e-12)
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))
    return path


def bert_files(folder: Path, config: dict) -> dict[str, Path]:
    """A BERT repository's config.json, vocab.txt and tokenizer_config.json (a vocabulary of placeholder words)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"w{i}" for i in range(config["vocab_size"] - len(vocab))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    write_json(folder / "config.json", {"architectures": ["BertForMaskedLM"], "model_type": "bert", **config})
    write_json(folder / "tokenizer_config.json", {"do_lower_case": True, "model_max_length": 512})
    return {name: folder / name for name in ("config.json", "vocab.txt", "tokenizer_config.json")}


# ---------------------------------------------------------------- main environment (current libraries)


def open_clip_tag(job: dict, out: Path) -> dict:
    """open_clip's built-in tag: the model's hub repository serves open_clip_model.safetensors (and the .bin)."""
    import open_clip
    from safetensors.torch import save_model

    cfg = open_clip.get_pretrained_cfg(job["arch"], job["tag"])
    seed_all(job["seed"])
    model = open_clip.create_model(job["arch"], pretrained=None, force_quick_gelu=bool(cfg.get("quick_gelu")))
    repo = cfg["hf_hub"].rstrip("/")
    save_model(model, str(out / "open_clip_model.safetensors"))
    files = {"open_clip_model.safetensors": out / "open_clip_model.safetensors"}
    if job.get("with_bin"):
        torch.save(model.state_dict(), out / "open_clip_pytorch_model.bin")
        files["open_clip_pytorch_model.bin"] = out / "open_clip_pytorch_model.bin"
    return {"repos": {repo: files}}


def biomedclip(job: dict, out: Path) -> dict:
    """BiomedCLIP's repository: open_clip_config.json + open_clip_pytorch_model.bin (no safetensors on main);
    BiomedBERT's repository: config.json + vocab.txt + tokenizer_config.json."""
    import copy

    import open_clip

    bert = bert_files(out / "biomedbert", SMALL_BERT)
    hub_config = job["open_clip_config"]
    model_cfg = copy.deepcopy(hub_config["model_cfg"])
    model_cfg["text_cfg"]["hf_model_name"] = str(out / "biomedbert")  # the same architecture, read from disk
    model_cfg["text_cfg"]["hf_model_pretrained"] = False
    model_cfg["vision_cfg"]["timm_model_pretrained"] = False
    seed_all(job["seed"])
    model = open_clip.model.CustomTextCLIP(**model_cfg)
    torch.save(model.state_dict(), out / "open_clip_pytorch_model.bin")
    write_json(out / "open_clip_config.json", hub_config)
    return {"repos": {job["repo"]: {"open_clip_config.json": out / "open_clip_config.json",
                                    "open_clip_pytorch_model.bin": out / "open_clip_pytorch_model.bin"},
                      job["bert_repo"]: bert}}


def torchvision_weights(job: dict, out: Path) -> dict:
    """download.pytorch.org/models/<arch>-<hash>.pth: the whole classifier's state dict (legacy pickle for the
    releases from before torch 1.6)."""
    import torchvision

    enum = torchvision.models.get_weight(job["weights"])
    name = enum.url.rsplit("/", 1)[-1]
    seed_all(job["seed"])
    model = torchvision.models.get_model(job["arch"], weights=None)
    torch.save(model.state_dict(), out / name, _use_new_zipfile_serialization=not job["legacy"])
    return {"plain": {name: out / name}}


def uni(job: dict, out: Path) -> dict:
    """MahmoodLab/UNI: config.json (timm's hub config) + pytorch_model.bin (the timm ViT-L/16's state dict)."""
    import timm

    seed_all(job["seed"])
    model = timm.create_model("vit_large_patch16_224", img_size=224, patch_size=16, init_values=1e-5,
                              num_classes=0, dynamic_img_size=True)
    torch.save(model.state_dict(), out / "pytorch_model.bin")
    write_json(out / "config.json", job["hub_config"])
    return {"repos": {job["repo"]: {"config.json": out / "config.json", "pytorch_model.bin": out / "pytorch_model.bin"}}}


def flair(job: dict, out: Path) -> dict:
    """FLAIRModel's state dict, by jusiro/FLAIR@d6652d53389ff49e5f73efaccf4246e9de88d1a3 flair/modeling/model.py:
    vision_model.model (torchvision resnet50, fc = Identity), vision_model.projection_head_vision.projection (2048 ->
    512, no bias), text_model.model (BertModel with pooler), text_model.projection_head_text.projection, logit_scale.
    Published twice: the Hugging Face mixin's model.safetensors + config.json, and the Google Drive flair_resnet.pth
    (a bare state dict written with transformers 4.2x, whose BERT still stored embeddings.position_ids)."""
    import torchvision
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    bert = bert_files(out / "bio_clinicalbert", SMALL_BERT)
    seed_all(job["seed"])
    resnet = torchvision.models.resnet50(weights=None)
    resnet.fc = torch.nn.Identity()
    state = {f"vision_model.model.{k}": v for k, v in resnet.state_dict().items()}
    state["vision_model.projection_head_vision.projection.weight"] = torch.randn(512, 2048) * 2048 ** -0.5
    text = BertModel(BertConfig(**SMALL_BERT))
    state.update({f"text_model.model.{k}": v for k, v in text.state_dict().items()})
    state["text_model.projection_head_text.projection.weight"] = torch.randn(512, SMALL_BERT["hidden_size"]) * 0.1
    state["logit_scale"] = torch.tensor(np.log(1 / 0.07), dtype=torch.float32)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
    write_json(out / "config.json", {"vision_type": "resnet_v1", "proj_dim": 512, "norm_features": True,
                                     "projection": True, "from_checkpoint": False, "vision_pretrained": True})
    legacy = dict(state)
    legacy["text_model.model.embeddings.position_ids"] = torch.arange(512).unsqueeze(0)
    torch.save(legacy, out / "flair_resnet.pth")
    return {"repos": {job["repo"]: {"config.json": out / "config.json", "model.safetensors": out / "model.safetensors"},
                      job["bert_repo"]: bert},
            "local": {"flair_resnet.pth": out / "flair_resnet.pth"}}


def llm2clip(job: dict, out: Path) -> dict:
    """microsoft/LLM2CLIP-Openai-L-14-336: config.json (its remote CLIPConfig) + one model.safetensors holding
    vision_model.*, visual_projection.weight (1024 -> 1280) and the text adapter (text_adapter.*)."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    vision = {**CLIP_L_336, "projection_dim": 1280}
    seed_all(job["seed"])
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**vision))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    assert any(k.startswith("vision_model.") for k in state)
    state["text_adapter.proj.0.weight"] = torch.randn(1280, 64)
    state["text_adapter.proj.0.bias"] = torch.zeros(1280)
    save_file(state, str(out / "model.safetensors"))
    write_json(out / "config.json", {
        "architectures": ["LLM2CLIPModel"], "model_type": "clip", "projection_dim": 1280,
        "auto_map": {"AutoConfig": "configuration_clip.CLIPConfig", "AutoModel": "modeling_clip.LLM2CLIPModel"},
        "vision_config": {**vision, "model_type": "clip_vision_model"},
        "text_config": {"model_type": "clip_text_model", "hidden_size": 64, "intermediate_size": 128,
                        "num_hidden_layers": 1, "num_attention_heads": 2, "projection_dim": 1280}})
    return {"repos": {job["repo"]: {"config.json": out / "config.json", "model.safetensors": out / "model.safetensors"}}}


# ---------------------------------------------------------------- the LLaVA authors' environment (transformers 4.36)


def clip_tower(job: dict, out: Path) -> dict:
    """openai/clip-vit-large-patch14-336: config.json, preprocessor_config.json and pytorch_model.bin of a CLIPModel
    (transformers' save_pretrained of the LLaVA era; the text half built small)."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(text_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                         num_attention_heads=2, projection_dim=768),
                        vision_config=CLIP_L_336, projection_dim=768)
    seed_all(job["seed"])
    CLIPModel(config).save_pretrained(out, safe_serialization=False)
    write_json(out / "preprocessor_config.json", {
        "crop_size": 336, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": OPENAI_MEAN, "image_std": OPENAI_STD,
        "resample": 3, "size": 336})
    names = ["config.json", "preprocessor_config.json", "pytorch_model.bin"]
    return {"repos": {job["repo"]: {name: out / name for name in names}}}


def llava_checkpoint(job: dict, out: Path) -> dict:
    """A LLaVA-family checkpoint written by the LLaVA authors' own classes (llava-torch): their config keys, a
    language model of the release's width (4096, so the projector has its real shape) but one layer and a tiny
    vocabulary, saved in shards with an index the way save_pretrained shards it (.bin or safetensors as the
    release). `embedded_tower`: the checkpoint also carries a copy of the vision tower under
    model.vision_tower.vision_tower.* (LLaVA-Med v1.5 does), here deliberately different from the hub tower."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    if job["llm"] == "mistral":
        from llava.model.language_model.llava_mistral import LlavaMistralConfig as Config
        from llava.model.language_model.llava_mistral import LlavaMistralForCausalLM as Model
    else:
        from llava.model.language_model.llava_llama import LlavaConfig as Config
        from llava.model.language_model.llava_llama import LlavaLlamaForCausalLM as Model
    config = Config(vocab_size=64, hidden_size=4096, intermediate_size=32, num_hidden_layers=1,
                    num_attention_heads=32, num_key_value_heads=1, max_position_embeddings=64, **job["config"])
    seed_all(job["seed"])
    model = Model(config)
    if job.get("embedded_tower"):
        tower = model.get_model().get_vision_tower()
        seed_all(job["seed"] + 1000)
        tower.vision_tower = CLIPVisionModel(CLIPVisionConfig(**CLIP_L_336))
        tower.is_loaded = True
    model.save_pretrained(out, safe_serialization=job["safetensors"], max_shard_size=job["max_shard_size"])
    files = {p.name: p for p in out.iterdir() if p.is_file() and p.name != "generation_config.json"}
    return {"repos": {job["repo"]: files}}


# ---------------------------------------------------------------- CONCH's code (PyPI conch-fork)


def conch(job: dict, out: Path) -> dict:
    """MahmoodLab/conch: meta.yaml + pytorch_model.bin, the CoCa state dict without its text decoder (the public
    weights have none: mahmoodlab/CONCH README)."""
    from conch.open_clip_custom.coca_model import CoCa
    from conch.open_clip_custom.factory import CFG_DIR

    cfg = json.loads((CFG_DIR / "conch_ViT-B-16.json").read_text())
    cfg.pop("custom_text", None)
    seed_all(job["seed"])
    model = CoCa(**cfg)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("text_decoder.")}
    torch.save(state, out / "pytorch_model.bin")
    (out / "meta.yaml").write_text("model: conch_ViT-B-16\n")
    return {"repos": {job["repo"]: {"meta.yaml": out / "meta.yaml", "pytorch_model.bin": out / "pytorch_model.bin"}}}


# ---------------------------------------------------------------- transformers 4.26.1 (CXR-CLIP's)


def cxr_clip(job: dict, out: Path) -> dict:
    """swint_mcc.tar as kakaobrain/cxr-clip@955ab931649cf4277dbeb96037d6e4e43e74d3cb writes it (cxrclip/trainer.py
    L161-170): {"model", "optimizer", "scheduler", "config", "epoch", "train_loss"}; the state dict of CXRClip with
    transformers 4.26.1's SwinModel (swin-tiny) under image_encoder.image_encoder, the linear projections, a BERT under
    text_encoder.text_encoder (position_ids still a buffer in 4.26); the config a plain dict whose lists are still
    omegaconf ListConfigs (convert_dictconfig_to_dict recurses only into DictConfig)."""
    import transformers
    from omegaconf import DictConfig, OmegaConf
    from transformers import BertConfig, BertModel, SwinConfig, SwinModel

    assert transformers.__version__ == "4.26.1", transformers.__version__
    seed_all(job["seed"])
    swin = SwinModel(SwinConfig(image_size=224, patch_size=4, embed_dim=96, depths=[2, 2, 6, 2],
                                num_heads=[3, 6, 12, 24], window_size=7))
    image_projection = torch.nn.Linear(768, 512)
    text = BertModel(BertConfig(**SMALL_BERT))
    text_projection = torch.nn.Linear(SMALL_BERT["hidden_size"], 512)
    state = {f"image_encoder.image_encoder.{k}": v for k, v in swin.state_dict().items()}
    state.update({f"image_projection.projection.{k}": v for k, v in image_projection.state_dict().items()})
    state.update({f"text_encoder.text_encoder.{k}": v for k, v in text.state_dict().items()})
    state.update({f"text_projection.projection.{k}": v for k, v in text_projection.state_dict().items()})
    state["logit_scale"] = torch.tensor(np.log(1 / 0.07), dtype=torch.float32)
    assert any(k.endswith("attention.self.query.weight") for k in state)  # the 4.26 names

    def to_dict(cfg):
        return {k: to_dict(v) if isinstance(v, DictConfig) else v for k, v in cfg.items()}

    cfg = OmegaConf.create({
        "model": {"name": "clip_custom", "temperature": 0.07,
                  "image_encoder": {"source": "huggingface", "name": "microsoft/swin-tiny-patch4-window7-224",
                                    "pretrained": True, "model_type": "swin"},
                  "text_encoder": {"source": "huggingface", "name": "emilyalsentzer/Bio_ClinicalBERT",
                                   "pretrained": True, "pooling": "eos"},
                  "projection_head": {"name": "linear", "dropout": 0.1, "proj_dim": 512}},
        "transform": {"train": {"RandomResizedCrop": {"size": 224, "scale": [0.8, 1.1]}}},
        "base": {"image_size": 224, "text_max_length": 256}})
    checkpoint = {"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 5e-5, "params": [0, 1]}]},
                  "scheduler": {"last_epoch": 10}, "config": to_dict(cfg), "epoch": 10,
                  "train_loss": torch.tensor(1.2345)}
    torch.save(checkpoint, out / "swint_mcc.tar")
    return {"local": {"swint_mcc.tar": out / "swint_mcc.tar"}, "plain": {"swint_mcc.tar": out / "swint_mcc.tar"}}


# ---------------------------------------------------------------- the chest X-ray packages (medclip, hi-ml-multimodal)


def randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Every float tensor random, BN statistics included (the official init's zero means and unit variances would
    hide a running_mean/running_var mix-up)."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) * 0.5 + 0.5 if "running_var" in name
                             else torch.randn_like(tensor) * 0.05)
    return model


def imagenet_standin(folder: Path) -> None:
    """torchvision.models.resnet50(pretrained=True), which MedCLIPVisionModel calls, reads TORCH_HOME's
    hub/checkpoints/resnet50-0676ba61.pth (ResNet50_Weights.IMAGENET1K_V1) and downloads it when absent: a random
    stand-in there, in a TORCH_HOME of this process only, keeps it offline. Every tensor is overwritten afterwards."""
    import os

    import torchvision

    name = Path(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url).name
    (folder / "hub" / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), folder / "hub" / "checkpoints" / name)
    os.environ["TORCH_HOME"] = str(folder)


def medclip(job: dict, out: Path) -> dict:
    """medclip-resnet-pretrained.zip's pytorch_model.bin: the state dict of medclip 0.0.3's
    MedCLIPModel(vision_cls=MedCLIPVisionModel) (vision_model.model.* the ResNet-50 whose fc is the 512-d projection,
    text_model.*, logit_scale), as MedCLIPModel.from_pretrained reads it (torch.load(input_dir/WEIGHTS_NAME)). The text
    tower (Bio_ClinicalBERT from the hub) is a small BERT of width 768 under the same names: it cannot affect image
    features, and its keys are the package's, which the study's zero-shot loads strictly after its renames."""
    import medclip as package
    from medclip import constants, modeling_medclip
    from transformers import BertConfig, BertModel

    assert package.version == "0.0.3", package.version

    bert = dict(SMALL_BERT, hidden_size=768)  # MedCLIPTextModel's projection_head is Linear(768, 512)

    class SmallBert:
        @staticmethod
        def from_pretrained(name, **kwargs):
            assert name == constants.BERT_TYPE, name
            return BertModel(BertConfig(**bert, **kwargs))

    modeling_medclip.AutoModel = SmallBert  # MedCLIPTextModel's AutoModel / AutoTokenizer.from_pretrained(BERT_TYPE)
    modeling_medclip.AutoTokenizer = type("NoTokenizer", (), {"from_pretrained": staticmethod(lambda name: None)})
    imagenet_standin(out / "torch-home")
    seed_all(job["seed"])
    model = randomise(modeling_medclip.MedCLIPModel(vision_cls=modeling_medclip.MedCLIPVisionModel))
    path = out / constants.WEIGHTS_NAME
    torch.save(model.state_dict(), path)
    release = {"local": {constants.WEIGHTS_NAME: path}}
    if job.get("bert_repo"):  # Bio_ClinicalBERT's tokenizer files, which the study's zero-shot reads (cached by users)
        release["repos"] = {job["bert_repo"]: bert_files(out / "bert", bert)}
    return release


def biovil(job: dict, out: Path) -> dict:
    """biovil_image_resnet50_proj_size_128.pt: the state dict of hi-ml-multimodal 0.2.2's BioViL ImageModel, the
    model get_biovil_image_encoder builds (ImageModel(RESNET50, JOINT_FEATURE_SIZE)) and loads it into strictly."""
    import health_multimodal
    from health_multimodal.image.model import pretrained

    assert health_multimodal.__version__ == "0.2.2", health_multimodal.__version__
    seed_all(job["seed"])
    model = randomise(pretrained.get_biovil_image_encoder(pretrained=False))
    path = out / pretrained.BIOVIL_IMAGE_WEIGHTS_NAME
    torch.save(model.state_dict(), path)
    return {"local": {pretrained.BIOVIL_IMAGE_WEIGHTS_NAME: path}}


KINDS = {f.__name__: f for f in (open_clip_tag, biomedclip, torchvision_weights, uni, flair, llm2clip, clip_tower,
                                 llava_checkpoint, conch, cxr_clip, medclip, biovil)}

if __name__ == "__main__":
    kind, job_path = sys.argv[1], Path(sys.argv[2])
    job = json.loads(job_path.read_text())
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(job.get("threads", 2)))
    release = KINDS[kind](job, out)
    release = {part: {k: ({n: str(p) for n, p in v.items()} if isinstance(v, dict) else str(v))
                      for k, v in entries.items()} for part, entries in release.items()}
    write_json(out / "release.json", release)
