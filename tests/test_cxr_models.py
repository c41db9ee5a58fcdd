"""The DLILP study's chest X-ray encoders (family cxr_resnet): each release's checkpoint layout, written from a module
tree whose attribute names are those of the official source (named per case), loads strictly through build_encoder
and gives the official module's pooled feature; strictness; and the study's preprocessing against a transcription of
the authors' load_image + norm_image (jusiro/DLILP@2c9d3011a04de994041ed05d15135d1e873c04b2
cxrvlms/pretraining/data/transforms.py L22-76), on CPU instead of .cuda()."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from conftest import DEMO, REPO
from medprobe.errors import EncoderError
from medprobe.models import build_encoder
from medprobe.models.cxr_preprocess import load_dlilp
from medprobe.registry import load_models

REGISTRY = load_models(REPO / "config" / "models.yaml")
CXR_IDS = sorted(m for m, s in REGISTRY.items() if s["family"] == "cxr_resnet")


# ---------------------------------------------------------------- the authors' preprocessing, transcribed

def authors_load_image(image_path, size, canvas, invert=False):
    """transforms.py load_image, verbatim but for .cuda() and the VinDr path test (here: `invert`)."""
    from torchvision.transforms import Resize

    if "dcm" in image_path or "dicom" in image_path:
        import pydicom
        dicom = pydicom.dcmread(image_path)
        img = np.array(dicom.pixel_array, dtype=float)
        if np.max(img) > 255 or np.min(img) < 0:
            img = (img - np.min(img)) / (np.max(img - np.min(img)) / 255.0)
        if invert:
            img = -img + 255
    else:
        img = Image.open(image_path)
        max_size = max(img.size)
        scale = max_size / size[0]
        img.draft('L', (img.size[0] / scale, img.size[1] // scale))
        img = np.asarray(img, dtype=float)
    if (len(img.shape) > 2) and (img.shape[-1] < 5):
        img = img[:, :, 0]
    img /= 255.
    img = np.expand_dims(img, 0)
    img = torch.tensor(img)
    if not canvas or (img.shape[-1] == img.shape[-2]):
        img = Resize(size, antialias=False)(img)  # torchvision 0.15.2: tensors were not antialiased
    else:
        sizes = img.shape[-2:]
        max_size = max(sizes)
        scale = max_size / size[0]
        img = Resize((int(img.shape[-2] / scale), int((img.shape[-1] / scale))), antialias=False)(img)
        img = torch.nn.functional.pad(img, (0, size[0] - img.shape[-1], 0, size[1] - img.shape[-2], 0, 0))
    return img.cpu().numpy()


def authors_norm_image(img, norm):
    from torchvision.transforms import Normalize

    if img.shape[0] == 1:
        img = np.repeat(img, 3, 0)
    if norm:
        img = torch.tensor(img)
        img = Normalize(mean=[0.5] * 3, std=[0.5] * 3)(img)
        img = img.numpy()
    return img


def authors(path, size, norm, invert=False):
    return torch.from_numpy(authors_norm_image(authors_load_image(str(path), (size, size), True, invert), norm))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("cxr_images")
    png = root / "square gray.png"
    Image.open(DEMO / "brain_mr/glioma_tumor/gg (1).jpg").convert("RGB").resize((300, 300)).save(png)
    jpeg = root / "wide.jpg"
    Image.open(DEMO / "brain_mr/no_tumor/image (11).jpg").convert("RGB").resize((500, 310)).save(jpeg, quality=90)
    return {"png": png, "jpeg": jpeg, "dicom": write_dicom(root / "cxr.dcm")}


def write_dicom(path):
    """A 16-bit MONOCHROME2 DICOM (values beyond 255: the min-max rule applies), non-square."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    pixels = (np.random.default_rng(0).random((260, 200)) * 4000 + 100).astype(np.uint16)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


@pytest.mark.parametrize("kind", ["png", "jpeg", "dicom"])
@pytest.mark.parametrize("size,norm,invert", [(224, True, False), (512, False, False), (224, False, True)])
def test_load_dlilp_equals_the_authors_loader(images, kind, size, norm, invert):
    path = images[kind]
    ours = load_dlilp(path.read_bytes(), str(path), size=size, norm=norm, invert=invert)
    theirs = authors(path, size, norm, invert and kind == "dicom")
    assert ours.shape == (3, size, size) and ours.dtype == torch.float32
    assert torch.equal(ours, theirs.float())


# ---------------------------------------------------------------- releases in their official layouts

def resnet(fc=True):
    model = torchvision.models.resnet50(weights=None)
    if not fc:
        model.fc = nn.Identity()
    return model


class MedKLIP(nn.Module):
    """MediaBrain-SJTU/MedKLIP@8e60b035 PreTrain_MedKLIP/models/model_MedKLIP.py L40-72 (module names; the decoder a
    stand-in Linear under its name)."""

    def __init__(self):
        super().__init__()
        self.disease_embedding_layer, self.cl_fc = nn.Linear(768, 256), nn.Linear(256, 768)
        self.res_features = nn.Sequential(*list(resnet().children())[:-3])
        self.res_l1, self.res_l2 = nn.Linear(1024, 1024), nn.Linear(1024, 256)
        self.decoder, self.classifier = nn.Linear(256, 256), nn.Linear(256, 2)

    def pooled(self, x):  # DLILP: Sequential(children[:-3], AdaptiveAvgPool2d(1), Flatten())
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.res_features(x), 1), 1)


class KAD(nn.Module):
    """xiaoman-zhang/KAD@591d999e A3_CLIP/models/clip_tqn.py ModelRes L119-128."""

    def __init__(self):
        super().__init__()
        self.resnet = resnet()
        self.res_features = nn.Sequential(*list(self.resnet.children())[:-3])
        self.res_l1, self.res_l2 = nn.Linear(1024, 1024), nn.Linear(1024, 768)

    def pooled(self, x):  # DLILP maps resnet.* onto a ResNet-50 whose fc is Identity
        return nn.Sequential(*list(self.resnet.children())[:-1])(x).flatten(1)


class BioViL(nn.Module):
    """hi-ml-multimodal 0.2.2 ImageModel: encoder.encoder (ResNetHIML = torchvision ResNet), projector.model.*"""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.encoder = resnet()
        self.projector = nn.Module()
        self.projector.model = nn.Sequential(nn.Conv2d(2048, 128, 1), nn.BatchNorm2d(128), nn.ReLU(),
                                             nn.Conv2d(128, 128, 1))

    def pooled(self, x):
        return nn.Sequential(*list(self.encoder.encoder.children())[:-1])(x).flatten(1)


class GLoRIA(nn.Module):
    """marshuang80/gloria@416466af: PretrainModel.gloria (GLoRIA) .img_encoder (ImageEncoder: model = resnet50 with
    fc = Identity, global_embedder, local_embedder) and .text_encoder."""

    def __init__(self):
        super().__init__()
        self.gloria = nn.Module()
        self.gloria.img_encoder = nn.Module()
        self.gloria.img_encoder.model = resnet(fc=False)
        self.gloria.img_encoder.global_embedder = nn.Linear(2048, 768)
        self.gloria.img_encoder.local_embedder = nn.Conv2d(1024, 768, 1, bias=False)
        self.gloria.text_encoder = nn.Module()
        self.gloria.text_encoder.model = nn.Embedding(10, 8)

    def pooled(self, x):
        return self.gloria.img_encoder.model(x)


class MedCLIP(nn.Module):
    """MedCLIP 0.0.3 medclip/modeling_medclip.py MedCLIPModel: vision_model.model (resnet50, fc Linear 2048->512 no
    bias), text_model.model / projection_head, logit_scale."""

    def __init__(self):
        super().__init__()
        self.vision_model = nn.Module()
        self.vision_model.model = resnet()
        self.vision_model.model.fc = nn.Linear(2048, 512, bias=False)
        self.text_model = nn.Module()
        self.text_model.model, self.text_model.projection_head = nn.Embedding(10, 8), nn.Linear(768, 512, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))

    def pooled(self, x):
        return nn.Sequential(*list(self.vision_model.model.children())[:-1])(x).flatten(1)


class CXRClipR50(nn.Module):
    """kakaobrain/cxr-clip@955ab931 CXRClip: image_encoder (ResNet50: resnet, fc deleted), image_projection,
    text_encoder, text_projection, logit_scale."""

    def __init__(self):
        super().__init__()
        self.image_encoder = nn.Module()
        self.image_encoder.resnet = resnet()
        del self.image_encoder.resnet.fc
        self.image_projection = nn.Module()
        self.image_projection.projection = nn.Linear(2048, 512, bias=False)
        self.text_encoder, self.text_projection = nn.Embedding(10, 8), nn.Linear(8, 512)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))

    def pooled(self, x):
        r = self.image_encoder.resnet
        x = r.layer4(r.layer3(r.layer2(r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x))))))))
        return torch.flatten(r.avgpool(x), 1)


class DLILP(nn.Module):
    """jusiro/DLILP@2c9d3011 cxrvlms/modeling/model.py VLMModel(learning_criteria="dlilp"): vision_model.model
    (resnet50, fc Identity), projection_head_vision.projection, projection_head2.projection, text_model, class
    prototypes, logit_scale, logit_scale_head2."""

    def __init__(self, dlilp=True):
        super().__init__()
        self.vision_model = nn.Module()
        self.vision_model.model = resnet(fc=False)
        self.vision_model.projection_head_vision = nn.Module()
        self.vision_model.projection_head_vision.projection = nn.Linear(2048, 512, bias=False)
        if dlilp:
            self.vision_model.projection_head2 = nn.Module()
            self.vision_model.projection_head2.projection = nn.Linear(2048, 512, bias=False)
            self.text_model = nn.Module()
            self.text_model.projection_head_text = nn.Module()
            self.text_model.projection_head_text.projection = nn.Linear(768, 512, bias=False)
            self.logit_scale_head2 = nn.Parameter(torch.tensor(2.0))
        self.class_prototypes = nn.Parameter(torch.randn(3, 512))
        self.logit_scale = nn.Parameter(torch.tensor(2.0))

    def pooled(self, x):
        return self.vision_model.model(x)


def randomise(model):
    """Random weights and BN statistics, so a wrongly mapped key cannot pass unnoticed."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) * 0.5 + 0.5 if "running_var" in name
                             else torch.randn_like(tensor) * 0.05)
    return model.eval()


def save(model, path, layout):
    state = model.state_dict()
    if layout == "medklip":
        torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 1}, path)
    elif layout == "ked":
        torch.save({"image_encoder": state, "text_encoder": {"w": torch.zeros(1)}, "model": {"w": torch.zeros(1)},
                    "epoch": 1}, path)
    elif layout == "gloria":
        torch.save({"state_dict": state, "epoch": 3, "global_step": 10}, path)
    elif layout == "cxr_clip_r50":
        torch.save({"model": state, "epoch": 10}, path)
    else:
        torch.save(state, path)


TREES = {"medklip": MedKLIP, "ked": KAD, "biovil": BioViL, "gloria": GLoRIA, "medclip": MedCLIP,
         "cxr_clip_r50": CXRClipR50, "dlilp": DLILP}
ONE_PER_LAYOUT = {REGISTRY[m]["arch_config"]["layout"]: m for m in CXR_IDS if m != "unimodal_m"}
ONE_PER_LAYOUT["unimodal"] = "unimodal_m"


def release(layout, tmp_path, seed=3):
    torch.manual_seed(seed)
    model = randomise(DLILP(dlilp=False) if layout == "unimodal" else TREES[layout]())
    path = tmp_path / f"{layout}.pth"
    save(model, path, layout)
    return model, path


def test_every_chest_xray_id_is_covered():
    assert set(CXR_IDS) == {"medklip", "ked", "biovil", "gloria", "medclip_r50", "cxr_clip_r50", "unimodal_m",
                            "dlilp_m", "unimodal_c", "unimodal_mc", "dlilp_mc", "unimodal_mcp", "dlilp_mcp"}
    assert {REGISTRY[m]["pretraining_data"] for m in CXR_IDS} == {"M", "C", "M+C", "M+Pub", "M+C+P"}


@pytest.mark.parametrize("layout", sorted(ONE_PER_LAYOUT))
def test_release_layout_loads_strictly_and_matches_official(layout, images, tmp_path):
    model_id = ONE_PER_LAYOUT[layout]
    spec = REGISTRY[model_id]
    official, path = release(layout, tmp_path)
    encoder = build_encoder(model_id, spec, {"checkpoint": path})
    load = encoder.extra["load"]
    batch = torch.stack([load(images[k].read_bytes(), str(images[k]), False) for k in ("png", "dicom")])
    with torch.inference_mode():
        ours, theirs = encoder.encode(batch), official.pooled(batch)
    assert ours.shape == (2, spec["dim"])
    assert (ours - theirs).abs().max() < 1e-4 and theirs.abs().max() > 1e-3


@pytest.mark.parametrize("layout", ["medklip", "gloria"])
def test_missing_or_unexpected_key_is_an_error_naming_it(layout, tmp_path):
    model_id = ONE_PER_LAYOUT[layout]
    official, path = release(layout, tmp_path)
    state = official.state_dict()
    prefix = {"medklip": "res_features.", "gloria": "gloria.img_encoder.model."}[layout]
    lost = next(k for k in state if k.startswith(prefix) and "layer" not in k and k.endswith("weight")
                or k.startswith(prefix + "6.0.conv1"))
    short = copy.copy(state)
    del short[lost]
    broken = torch.nn.Module()
    broken.state_dict = lambda: short
    save(broken, path, layout)
    with pytest.raises(EncoderError, match=lost.replace(".", r"\.")):
        build_encoder(model_id, REGISTRY[model_id], {"checkpoint": path})
    extra = {**state, f"{prefix}surplus.weight": torch.zeros(2)}
    broken.state_dict = lambda: extra
    save(broken, path, layout)
    with pytest.raises(EncoderError, match="surplus"):
        build_encoder(model_id, REGISTRY[model_id], {"checkpoint": path})
