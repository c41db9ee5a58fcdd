"""Weight loading and fetching, offline: checkpoints written here in each release's key layout must load strictly
and reproduce the network that wrote them; fetch records hash files; gated repositories say what to do."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from medprobe.errors import EncoderError
from medprobe.models import build_encoder
from medprobe.registry import load_models
from medprobe.weights import RECORD_VERSION, fetch_weights, hf_file, is_cached, read_record, record_paths


@pytest.fixture(scope="module")
def registry(repo):
    return load_models(repo / "config" / "models.yaml")


def features(encoder, seed=0, size=None):
    size = size or encoder.preprocessing.get("size", 224)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return encoder.encode(x)


def twin(model_id, spec, make_files, tmp_path):
    """A random 'released' model (seed 7), its checkpoint written by make_files, and the loader's reload of it."""
    released = build_encoder(model_id, {**spec, "weights": {**spec["weights"], "source": "random", "seed": 7}})
    files = make_files(released, tmp_path)
    loaded = build_encoder(model_id, spec, files)
    fresh = build_encoder(model_id, {**spec, "weights": {**spec["weights"], "source": "random", "seed": 8}})
    return released, loaded, fresh


def assert_reloaded(released, loaded, fresh):
    torch.testing.assert_close(features(loaded), features(released))
    assert not torch.allclose(features(fresh), features(released))


def test_open_clip_tag_checkpoint(registry, tmp_path):
    import open_clip

    spec = registry["clip_vit_b16"]

    def make(released, tmp):
        full = open_clip.create_model("ViT-B-16", pretrained=None, force_quick_gelu=True)
        full.visual.load_state_dict(released.module.state_dict())
        torch.save(full.state_dict(), tmp / "open_clip_pytorch_model.bin")
        return {"checkpoint": tmp / "open_clip_pytorch_model.bin"}

    assert_reloaded(*twin("clip_vit_b16", spec, make, tmp_path))


def test_biomedclip_vision_tower_from_hub_layout(registry, tmp_path):
    spec = registry["biomedclip"]

    def make(released, tmp):
        state = {f"visual.{k}": v for k, v in released.module.state_dict().items()}
        state["text.transformer.embeddings.word_embeddings.weight"] = torch.zeros(4, 4)
        torch.save(state, tmp / "open_clip_pytorch_model.bin")
        (tmp / "open_clip_config.json").write_text(json.dumps({"model_cfg": spec["arch_config"]}))
        return {"checkpoint": tmp / "open_clip_pytorch_model.bin", "config": tmp / "open_clip_config.json"}

    assert_reloaded(*twin("biomedclip", spec, make, tmp_path))
    bad = {"model_cfg": {**spec["arch_config"], "embed_dim": 768}}
    (tmp_path / "open_clip_config.json").write_text(json.dumps(bad))
    with pytest.raises(EncoderError, match="embed_dim"):
        build_encoder("biomedclip", spec, {"checkpoint": tmp_path / "open_clip_pytorch_model.bin",
                                           "config": tmp_path / "open_clip_config.json"})


def test_torchvision_checkpoint(registry, tmp_path):
    import torchvision

    spec = registry["resnet50"]

    def make(released, tmp):
        full = torchvision.models.resnet50()
        state = {**released.module.state_dict(), "fc.weight": full.fc.weight, "fc.bias": full.fc.bias}
        torch.save(state, tmp / "resnet50-0676ba61.pth")
        return {"checkpoint": tmp / "resnet50-0676ba61.pth"}

    assert_reloaded(*twin("resnet50", spec, make, tmp_path))


def test_timm_hub_checkpoint_is_strict(registry, tmp_path):
    small = {**registry["uni"], "arch": "vit_small_patch16_224", "dim": 384,
             "feature_points": {"cls": {"dim": 384, "description": "test"}}}

    def make(released, tmp):
        torch.save(released.module.state_dict(), tmp / "pytorch_model.bin")
        return {"checkpoint": tmp / "pytorch_model.bin"}

    assert_reloaded(*twin("uni", small, make, tmp_path))
    state = torch.load(tmp_path / "pytorch_model.bin")
    del state["blocks.0.ls1.gamma"]  # a checkpoint without LayerScale: the wrong init_values
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(EncoderError, match="missing key"):
        build_encoder("uni", small, {"checkpoint": tmp_path / "pytorch_model.bin"})


TINY_TOWER = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
              "image_size": 336, "patch_size": 14, "hidden_act": "quick_gelu", "projection_dim": 32}


def tiny_llava(spec):
    arch = {"tower": TINY_TOWER, "select_layer": -2, "projector": {"type": "mlp2x_gelu", "hidden_size": 96}}
    return {**spec, "arch_config": arch, "dim": 96,
            "feature_points": {**spec["feature_points"], "projector_mean": {"dim": 96, "description": "t"}}}


def write_llava_release(released, tmp, spec, **config_overrides):
    tower = released.module["tower"]
    core = getattr(tower, "vision_model", tower)
    state = {f"vision_model.{k}": v.contiguous() for k, v in core.state_dict().items()}
    state["text_model.embeddings.token_embedding.weight"] = torch.zeros(3, 3)
    save_file(state, str(tmp / "model.safetensors"))
    (tmp / "tower_config.json").write_text(json.dumps({"model_type": "clip", "vision_config": TINY_TOWER}))
    projector = released.module["projector"].state_dict()
    shard_1 = {"model.layers.0.mlp.weight": torch.zeros(2, 2), "model.mm_projector.0.weight": projector["0.weight"],
               "model.mm_projector.0.bias": projector["0.bias"]}
    shard_2 = {"model.mm_projector.2.weight": projector["2.weight"], "model.mm_projector.2.bias": projector["2.bias"],
               "lm_head.weight": torch.zeros(2, 2)}
    save_file(shard_1, str(tmp / "model-00001-of-00002.safetensors"))
    torch.save(shard_2, tmp / "pytorch_model-00002-of-00002.bin")  # one pickle shard too
    config = {"mm_vision_tower": spec["arch"], "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch",
              "mm_projector_type": "mlp2x_gelu", "mm_hidden_size": 64, "hidden_size": 96,
              "image_aspect_ratio": "pad", **config_overrides}
    (tmp / "config.json").write_text(json.dumps(config))
    return {"tower_config": tmp / "tower_config.json", "tower": tmp / "model.safetensors",
            "config": tmp / "config.json", "shard_0": tmp / "model-00001-of-00002.safetensors",
            "shard_1": tmp / "pytorch_model-00002-of-00002.bin"}


def test_llava_reads_tower_and_projector_only(registry, tmp_path):
    spec = tiny_llava(registry["llava_med"])
    assert_reloaded(*twin("llava_med", spec, lambda r, t: write_llava_release(r, t, spec), tmp_path))


def test_llava_refuses_a_config_it_cannot_reproduce(registry, tmp_path):
    spec = tiny_llava(registry["llava_med_pp"])
    released = build_encoder("llava_med_pp", {**spec, "weights": {"source": "random", "seed": 1}})
    files = write_llava_release(released, tmp_path, spec, s2=True, mm_hidden_size=192)
    with pytest.raises(EncoderError, match="s2 is True but the registry's arch_config has no s2_scales") as err:
        build_encoder("llava_med_pp", spec, files)
    assert "mm_hidden_size is 192" in str(err.value)


def test_llm2clip_reads_the_image_side(registry, tmp_path):
    tower = {**TINY_TOWER, "projection_dim": 40}
    spec = {**registry["llm2clip_l14_336"], "arch_config": {"tower": tower}, "dim": 40,
            "feature_points": {"image_embeds": {"dim": 40, "description": "t"}}}

    def make(released, tmp):
        state = {k: v.contiguous() for k, v in released.module.state_dict().items()}
        state["text_adapter.proj.weight"] = torch.zeros(2, 2)
        save_file(state, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps({"projection_dim": 40, "vision_config": tower}))
        return {"config": tmp / "config.json", "checkpoint": tmp / "model.safetensors"}

    assert_reloaded(*twin("llm2clip_l14_336", spec, make, tmp_path))


def test_conch_reads_the_contrastive_image_side(registry, tmp_path):
    arch = {"image_size": 448, "patch_size": 16, "width": 64, "layers": 2, "heads": 4, "embed_dim_contrast": 32,
            "attn_pooler_heads": 4}
    spec = {**registry["conch"], "arch_config": arch, "dim": 32,
            "feature_points": {"image_features": {"dim": 32, "description": "t"}}}

    def make(released, tmp):
        state = {f"visual.{k}": v for k, v in released.module.state_dict().items()}
        state["visual.attn_pool_caption.query"] = torch.zeros(256, 64)
        state["text.token_embedding.weight"] = torch.zeros(3, 3)
        torch.save(state, tmp / "pytorch_model.bin")
        return {"checkpoint": tmp / "pytorch_model.bin"}

    assert_reloaded(*twin("conch", spec, make, tmp_path))


def test_cxr_clip_reads_its_training_archive(registry, tmp_path):
    swin = {"image_size": 224, "patch_size": 4, "embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 1, 1],
            "window_size": 7}
    spec = {**registry["cxr_clip"], "arch_config": {"swin": swin, "proj_dim": 24}, "dim": 24,
            "feature_points": {"image_embeds": {"dim": 24, "description": "t"}}}

    def make(released, tmp):
        model = released.module
        state = {f"image_encoder.image_encoder.{k}": v for k, v in model.image_encoder.state_dict().items()}
        state.update({f"image_projection.projection.{k}": v for k, v in model.image_projection.state_dict().items()})
        state["text_encoder.text_encoder.embeddings.weight"] = torch.zeros(2, 2)
        torch.save({"model": state, "config": {"model": {"name": "clip_swin"}}, "epoch": 3}, tmp / "swint_mcc.tar")
        return {"checkpoint": tmp / "swint_mcc.tar"}

    assert_reloaded(*twin("cxr_clip", spec, make, tmp_path))


def test_flair_reads_vision_model(registry, tmp_path):
    spec = registry["flair"]

    def make(released, tmp):
        state = {f"vision_model.{k}": v.contiguous() for k, v in released.module.state_dict().items()}
        state["text_model.projection_head_text.projection.weight"] = torch.zeros(2, 2)
        save_file(state, str(tmp / "model.safetensors"))
        return {"checkpoint": tmp / "model.safetensors"}

    released, loaded, fresh = twin("flair", spec, make, tmp_path)
    assert_reloaded(released, loaded, fresh)
    torch.testing.assert_close(features(loaded).norm(dim=1), torch.ones(2))  # FLAIR's projection is unit-norm


def test_fetch_record_of_a_local_checkpoint(registry, tmp_path):
    checkpoint = tmp_path / "flair_resnet.pth"
    checkpoint.write_bytes(b"0123456789")
    record = fetch_weights("flair", registry["flair"], tmp_path / "flair.json", local_path=checkpoint)
    entry = record["files"]["checkpoint"]
    assert entry["sha256"] == "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882"
    assert entry["bytes"] == 10 and record["tower_sha256"] == entry["sha256"]
    assert record_paths(read_record(tmp_path / "flair.json", "flair")) == {"checkpoint": checkpoint.resolve()}
    checkpoint.write_bytes(b"changed!")
    with pytest.raises(EncoderError, match="changed or disappeared"):
        read_record(tmp_path / "flair.json", "flair")
    with pytest.raises(EncoderError, match="run fetch_weights first"):
        read_record(tmp_path / "missing.json", "flair")


def test_weight_free_models_need_no_files(registry, tmp_path):
    record = fetch_weights("pixels", registry["pixels"], tmp_path / "pixels.json")
    assert record["files"] == {} and record["tower_sha256"] is None


def test_gated_repository_says_what_to_do(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    from types import SimpleNamespace

    response = SimpleNamespace(status_code=403, headers={}, request=None)

    def gated(*args, **kwargs):
        raise GatedRepoError("403 gated", response=response)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", gated)
    with pytest.raises(EncoderError) as err:
        hf_file("uni", "MahmoodLab/UNI", "pytorch_model.bin")
    text = str(err.value)
    assert "https://huggingface.co/MahmoodLab/UNI" in text and "accept its terms" in text and "HF_TOKEN" in text
    assert "snakemake results/weights/uni.json" in text


def test_nothing_is_cached_offline(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert not is_cached("resnet50", registry["resnet50"])
    assert not is_cached("uni", registry["uni"])


WORDS = ["a", "photo", "of", "an", "mri", "brain", "with", "glioma", "meningioma", "pituitary", "no", "tumor", "tumour",
         "benign", "malignant", "normal", "breast", "lesion", "ultrasound", ".", ",", "the"]


def biomedbert_files(tmp_path, spec):
    """BiomedBERT's two files as fetch_weights leaves them (one snapshot folder), a tiny BERT of the same kind."""
    folder = tmp_path / "biomedbert_snapshot"
    folder.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": len(vocab), "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
        "max_position_embeddings": 512, "type_vocab_size": 2, "pad_token_id": 0, "layer_norm_eps": 1e-12}))
    hub = tmp_path / "open_clip_config.json"
    hub.write_text(json.dumps({"model_cfg": {**spec["arch_config"], "text_cfg": spec["text_config"]}}))
    return {"text_config": folder / "config.json", "text_vocab": folder / "vocab.txt", "config": hub}


def test_biomedclip_text_tower_loads_the_checkpoints_text_weights(registry, tmp_path):
    from medprobe.models.open_clip_family import build_text_encoder

    spec = registry["biomedclip"]
    files = biomedbert_files(tmp_path, spec)
    reference = build_text_encoder("biomedclip", spec, files)  # seeded random weights
    prompts = ["a brain MRI with glioma.", "a brain mri with NO tumor."]
    tokens = reference.tokenizer(prompts)
    assert tokens.shape == (2, 256) and tokens[0, 0].item() == 2 and (tokens[:, 12:] == 0).all()  # [CLS] .. pad
    assert torch.equal(reference.tokenizer(["A BRAIN MRI"]), reference.tokenizer(["a brain mri"]))  # uncased

    # a checkpoint in BiomedCLIP's layout: the text tower under text.*, beside the vision tower
    state = {f"text.{k}": v.clone() for k, v in reference.module.state_dict().items()}
    state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    state["visual.trunk.cls_token"] = torch.zeros(1, 1, 768)
    assert not any(".pooler." in key for key in state)  # cls_last_hidden_state_pooler: BERT's pooler is not built
    torch.save(state, tmp_path / "open_clip_pytorch_model.bin")
    other_seed = {**spec, "weights": {**spec["weights"], "seed": 7}}  # another random init, then the checkpoint
    expected = reference(prompts)
    assert expected.shape == (2, 512)
    assert not torch.allclose(build_text_encoder("biomedclip", other_seed, files)(prompts), expected)
    loaded = build_text_encoder("biomedclip", other_seed, {**files, "checkpoint":
                                                           tmp_path / "open_clip_pytorch_model.bin"})
    torch.testing.assert_close(loaded(prompts), expected)

    state["text.proj.2.weight"] = state["text.proj.2.weight"] + 1.0
    torch.save(state, tmp_path / "open_clip_pytorch_model.bin")
    changed = build_text_encoder("biomedclip", spec, {**files, "checkpoint": tmp_path / "open_clip_pytorch_model.bin"})
    assert not torch.allclose(changed(prompts), expected)

    del state["text.proj.0.weight"]
    torch.save(state, tmp_path / "open_clip_pytorch_model.bin")
    with pytest.raises(EncoderError, match="missing key"):
        build_text_encoder("biomedclip", spec, {**files, "checkpoint": tmp_path / "open_clip_pytorch_model.bin"})


def test_biomedclip_text_tower_checks_the_hub_config_and_its_files(registry, tmp_path):
    from medprobe.models.open_clip_family import build_text_encoder

    spec = registry["biomedclip"]
    files = biomedbert_files(tmp_path, spec)
    hub = json.loads(files["config"].read_text())
    hub["model_cfg"]["text_cfg"]["hf_proj_type"] = "linear"
    files["config"].write_text(json.dumps(hub))
    with pytest.raises(EncoderError, match="text_cfg.hf_proj_type"):
        build_text_encoder("biomedclip", spec, files)
    with pytest.raises(EncoderError, match="--forcerun fetch_weights"):
        build_text_encoder("biomedclip", spec, {"checkpoint": tmp_path / "x.bin"})


def test_biomedclip_fetch_takes_biomedberts_config_and_vocab(registry, monkeypatch):
    from medprobe import weights

    asked = []

    def fake_hf_file(model_id, repo, filename, *, revision=None, offline=False):
        asked.append((repo, filename))
        return Path(f"/cache/{repo}/{filename}")

    monkeypatch.setattr(weights, "hf_file", fake_hf_file)
    found = weights.resolve_files("biomedclip", registry["biomedclip"], offline=True)
    assert found["text_config"] == Path("/cache/microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract/config.json")
    assert found["text_vocab"].name == "vocab.txt"
    assert ("microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", "open_clip_pytorch_model.bin") in asked


def conch_tokenizer_file(tmp_path) -> Path:
    """A byte-level BPE tokenizer file of the kind CONCH ships (special tokens, start/end added to every text)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    special = ["<pad>", "<start_of_text>", "<end_of_text>"]
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=special, show_progress=False)
    tokenizer.train_from_iterator([" ".join(WORDS)] * 20, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<start_of_text> $A <end_of_text>", special_tokens=[(t, tokenizer.token_to_id(t)) for t in special[1:]])
    path = tmp_path / "conch_byte_level_bpe_uncased.json"
    tokenizer.save(str(path))
    return path


def tiny_conch(spec, vocab_size):
    text = {**spec["text_config"], "context_length": 16, "vocab_size": vocab_size, "width": 32, "heads": 2,
            "layers": 2}
    arch = {**spec["arch_config"], "embed_dim_contrast": 24}
    return {**spec, "text_config": text, "arch_config": arch}


def test_conch_text_tower_in_the_releases_layout(registry, tmp_path):
    from medprobe.models.conch import build_text_encoder

    tokenizer_file = conch_tokenizer_file(tmp_path)
    vocab_size = len(json.loads(tokenizer_file.read_text())["model"]["vocab"])
    spec = tiny_conch(registry["conch"], vocab_size)
    reference = build_text_encoder("conch", spec, {"text_tokenizer": tokenizer_file})
    prompts = ["a brain mri with glioma.", "normal breast ultrasound."]
    tokens = reference.tokenizer(prompts)
    assert tokens.shape == (2, 15) and tokens[0, 0].item() == 1 and (tokens[0] == 2).sum() == 1  # start ... end, pad
    assert reference.module.positional_embedding.shape == (16, 32)  # 15 tokens + the appended CLS, as in CONCH

    # CONCH's checkpoint: text.* (cls_emb, positional_embedding, text_projection, ...) beside visual.* and the decoder
    state = {f"text.{k}": v.clone() for k, v in reference.module.state_dict().items()}
    assert {"text.cls_emb", "text.text_projection", "text.positional_embedding"} <= set(state)
    projection = torch.linalg.qr(torch.randn(24, 24, generator=torch.Generator().manual_seed(3)))[0]
    state["visual.proj_contrast"] = projection
    state["text_decoder.ln_final.weight"] = torch.ones(32)
    torch.save(state, tmp_path / "pytorch_model.bin")
    files = {"text_tokenizer": tokenizer_file, "checkpoint": tmp_path / "pytorch_model.bin"}
    other_seed = {**spec, "weights": {**spec["weights"], "seed": 5}}
    loaded = build_text_encoder("conch", other_seed, files)
    torch.testing.assert_close(loaded(prompts), reference(prompts))
    np.testing.assert_array_equal(loaded.image_projection, projection.numpy())

    del state["text.cls_emb"]
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(EncoderError, match="missing key"):
        build_text_encoder("conch", spec, files)
    with pytest.raises(EncoderError, match="--forcerun fetch_weights"):
        build_text_encoder("conch", spec, {"checkpoint": tmp_path / "pytorch_model.bin"})


def test_conch_zero_shot_meets_the_text_after_the_image_projection(registry, repo, tmp_path):
    """Stored CONCH features are before proj_contrast: zero-shot must apply it, or it scores at chance."""
    from medprobe.models.conch import build_text_encoder
    from medprobe.registry import load_datasets
    from medprobe.split import make_split
    from medprobe.store import write_embeddings
    from medprobe.zeroshot import class_embeddings, class_prompts, run_zeroshot

    tokenizer_file = conch_tokenizer_file(tmp_path)
    spec = tiny_conch(registry["conch"], len(json.loads(tokenizer_file.read_text())["model"]["vocab"]))
    reference = build_text_encoder("conch", spec, {"text_tokenizer": tokenizer_file})
    projection = torch.linalg.qr(torch.randn(24, 24, generator=torch.Generator().manual_seed(3)))[0]
    state = {f"text.{k}": v for k, v in reference.module.state_dict().items()}
    torch.save({**state, "visual.proj_contrast": projection}, tmp_path / "pytorch_model.bin")
    record = tmp_path / "conch.json"
    record.write_text(json.dumps({"record_version": RECORD_VERSION, "model": "conch", "files": {
        role: {"path": str(path), "bytes": path.stat().st_size}
        for role, path in (("checkpoint", tmp_path / "pytorch_model.bin"), ("text_tokenizer", tokenizer_file))}}))

    dataset = load_datasets(repo / "config" / "datasets.yaml")["busi_demo"]
    text = class_embeddings(reference, class_prompts(dataset["classes"], dataset)["names"])
    labels = np.repeat([0, 1, 2], 20)
    joint = text[labels] + np.random.default_rng(0).normal(size=(60, 24)) * 0.01
    features = joint @ projection.numpy().T  # orthogonal: stored @ proj_contrast == joint
    ids = [f"s{i}" for i in range(60)]
    attrs = {"medprobe_version": "0", "model_id": "conch", "feature_point": "image_features", "weights": {},
             "preprocessing": {}, "dataset_id": "busi_demo", "manifest_sha256": "x", "class_names": dataset["classes"],
             "device": "cpu", "dtype": "float32", "created_utc": "t"}
    emb = write_embeddings(tmp_path / "e.h5", features.astype(np.float32), labels, ids, [""] * 60, attrs)
    make_split(ids, labels, seed=0).to_csv(tmp_path / "split.tsv", sep="\t", index=False)
    table = run_zeroshot(emb, tmp_path / "split.tsv", record, tmp_path / "z.tsv", dataset_id="busi_demo",
                         model_id="conch", model_spec=spec, dataset_spec=dataset)
    assert table[(table.metric == "accuracy") & (table.prompt_set == "names")].value.iloc[0] == 1.0


def test_local_weights_keep_the_text_tower_files_when_they_can_be_had(registry, tmp_path, monkeypatch, caplog):
    from medprobe import weights

    checkpoint = tmp_path / "conch.bin"
    checkpoint.write_bytes(b"x")
    monkeypatch.setattr(weights, "url_file", lambda model_id, url, offline=False, **kw: tmp_path / "tok.json")
    found = weights.resolve_files("conch", registry["conch"], offline=True, local_path=checkpoint)
    assert found == {"checkpoint": checkpoint, "text_tokenizer": tmp_path / "tok.json"}

    def not_cached(model_id, url, offline=False, **kw):
        raise weights.NotCached(f"model '{model_id}': {url} is not downloaded")

    monkeypatch.setattr(weights, "url_file", not_cached)
    assert weights.resolve_files("conch", registry["conch"], offline=True, local_path=checkpoint) == \
        {"checkpoint": checkpoint}
    assert "zero-shot will not run" in caplog.text


def test_flair_text_tower_in_the_releases_layout(registry, tmp_path):
    from medprobe.models.flair import build_text_encoder

    spec = registry["flair"]
    bert = biomedbert_files(tmp_path, registry["biomedclip"])  # a tiny BERT stands in for Bio_ClinicalBERT
    files = {"text_config": bert["text_config"], "text_vocab": bert["text_vocab"]}
    reference = build_text_encoder("flair", spec, files)
    prompts = ["a fundus photograph of glioma", "a fundus photograph of no tumor with a lesion"]
    out = reference(prompts)
    assert out.shape == (2, 512)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))  # normalise, project, normalise
    # as in FLAIR, tokens are averaged with the padding of their batch: a prompt alone embeds differently
    assert not torch.allclose(reference(prompts[:1])[0], out[0])

    # FLAIR's checkpoint: text_model.model.* (BERT, with its pooler) and the projection, beside vision_model.*
    state = {f"text_model.{k}": v.clone() for k, v in reference.module.state_dict().items()}
    assert "text_model.model.pooler.dense.weight" in state
    assert "text_model.projection_head_text.projection.weight" in state
    state["vision_model.model.conv1.weight"] = torch.zeros(64, 3, 7, 7)
    torch.save(state, tmp_path / "flair.pth")
    other_seed = {**spec, "weights": {**spec["weights"], "seed": 9}}
    loaded = build_text_encoder("flair", other_seed, {**files, "checkpoint": tmp_path / "flair.pth"})
    torch.testing.assert_close(loaded(prompts), out)

    del state["text_model.projection_head_text.projection.weight"]
    torch.save(state, tmp_path / "flair.pth")
    with pytest.raises(EncoderError, match="missing key"):
        build_text_encoder("flair", spec, {**files, "checkpoint": tmp_path / "flair.pth"})
    with pytest.raises(EncoderError, match="--forcerun fetch_weights"):
        build_text_encoder("flair", spec, {"checkpoint": tmp_path / "flair.pth"})


def test_zero_shot_refuses_a_feature_point_outside_the_text_space(registry, repo, tmp_path):
    from medprobe.registry import load_datasets
    from medprobe.split import make_split
    from medprobe.store import write_embeddings
    from medprobe.zeroshot import run_zeroshot

    spec = registry["clip_vit_b16_random"]
    dataset = load_datasets(repo / "config" / "datasets.yaml")["busi_demo"]
    labels = np.repeat([0, 1, 2], 10)
    ids = [f"s{i}" for i in range(30)]
    attrs = {"medprobe_version": "0", "model_id": "clip_vit_b16_random", "feature_point": "backbone",
             "weights": {}, "preprocessing": {}, "dataset_id": "busi_demo", "manifest_sha256": "x",
             "class_names": dataset["classes"], "device": "cpu", "dtype": "float32", "created_utc": "t"}
    emb = write_embeddings(tmp_path / "e.h5", np.ones((30, 768), np.float32), labels, ids, [""] * 30, attrs)
    make_split(ids, labels, seed=0).to_csv(tmp_path / "split.tsv", sep="\t", index=False)
    with pytest.raises(EncoderError, match="768-d.*512-d space"):
        run_zeroshot(emb, tmp_path / "split.tsv", None, tmp_path / "z.tsv", dataset_id="busi_demo",
                     model_id="clip_vit_b16_random", model_spec=spec, dataset_spec=dataset)


# ---------------------------------------------------------------- what the official code showed (fast unit checks)


def hf_cache_file(root: Path, repo: str, commit: str, name: str, writer) -> Path:
    """A file laid out as huggingface_hub lays it out: snapshots/<commit>/<name> -> ../../blobs/<sha256>."""
    import hashlib

    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    tmp = folder / "blobs" / "incoming"
    writer(tmp)
    blob = folder / "blobs" / hashlib.sha256(tmp.read_bytes()).hexdigest()
    tmp.rename(blob)
    link = folder / "snapshots" / commit / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path("..") / ".." / "blobs" / blob.name)
    return link


def test_checkpoint_format_is_read_from_the_bytes_not_the_name(tmp_path):
    from medprobe.models.checkpoints import SAFETENSORS, TORCH_LEGACY, TORCH_ZIP, checkpoint_format, read_state_dict

    state = {"w": torch.arange(6.0).reshape(2, 3)}
    link = hf_cache_file(tmp_path, "org/m", "c" * 40, "model.safetensors", lambda p: save_file(state, str(p)))
    blob = link.resolve()
    assert blob.suffix == "" and checkpoint_format(blob) == SAFETENSORS  # a blob has no suffix
    torch.testing.assert_close(read_state_dict(blob)["w"], state["w"])
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)  # torchvision's 2017 files
    torch.save(state, tmp_path / "zip.bin")
    assert checkpoint_format(tmp_path / "legacy.pth") == TORCH_LEGACY
    assert checkpoint_format(tmp_path / "zip.bin") == TORCH_ZIP
    torch.testing.assert_close(read_state_dict(tmp_path / "legacy.pth")["w"], state["w"])
    (tmp_path / "page.html").write_text("<html>rate limited</html>")
    with pytest.raises(EncoderError, match="page.html: not a checkpoint"):
        read_state_dict(tmp_path / "page.html")


def test_fetch_record_keeps_the_snapshot_name_and_its_commit(registry, tmp_path, monkeypatch):
    from medprobe import weights

    commit = registry["uni"]["weights"]["revisions"]["MahmoodLab/UNI"]
    link = hf_cache_file(tmp_path, "MahmoodLab/UNI", commit, "pytorch_model.bin",
                         lambda p: torch.save({"w": torch.ones(1)}, p))
    monkeypatch.setattr(weights, "hf_file", lambda model_id, repo, name, revision=None, offline=False: link)
    record = fetch_weights("uni", registry["uni"], tmp_path / "uni.json", offline=True)
    entry = record["files"]["checkpoint"]
    assert entry["path"].endswith(f"snapshots/{commit}/pytorch_model.bin")
    assert entry["repo"] == "MahmoodLab/UNI" and entry["revision"] == commit


class OmegaLike:  # stands for omegaconf's containers, which CXR-CLIP pickles beside its weights
    def __init__(self, content):
        self._content = content

    def __getstate__(self):
        return {"_content": self._content, "_parent": None}


def test_foreign_objects_are_read_as_inert_placeholders(tmp_path, monkeypatch):
    from medprobe.models.checkpoints import read_state_dict

    OmegaLike.__module__ = "omegaconf.listconfig"
    OmegaLike.__qualname__ = "ListConfig"
    import sys
    import types

    package, fake = types.ModuleType("omegaconf"), types.ModuleType("omegaconf.listconfig")
    fake.ListConfig, package.listconfig = OmegaLike, fake
    monkeypatch.setitem(sys.modules, "omegaconf", package)
    monkeypatch.setitem(sys.modules, "omegaconf.listconfig", fake)
    torch.save({"model": {"image_encoder.w": torch.ones(2)}, "config": {"scale": OmegaLike([0.8, 1.1])},
                "train_loss": torch.tensor(1.0)}, tmp_path / "swint_mcc.tar")
    monkeypatch.delitem(sys.modules, "omegaconf.listconfig")  # as on a machine without omegaconf
    monkeypatch.delitem(sys.modules, "omegaconf")
    with pytest.raises(EncoderError, match="omegaconf.listconfig.ListConfig"):
        read_state_dict(tmp_path / "swint_mcc.tar")
    state = read_state_dict(tmp_path / "swint_mcc.tar", foreign_objects=True)
    assert list(state) == ["image_encoder.w"]


def test_text_tower_files_never_block_image_embedding(registry, tmp_path, monkeypatch):
    from medprobe import weights

    def hf_file(model_id, repo, name, revision=None, offline=False):
        if repo == "MahmoodLab/conch":
            return tmp_path / name
        raise AssertionError("only CONCH's own repository")

    def no_tokenizer(model_id, url, offline=False, **kw):
        raise weights.NotCached(f"model '{model_id}': {url} is not downloaded")

    monkeypatch.setattr(weights, "hf_file", hf_file)
    monkeypatch.setattr(weights, "url_file", no_tokenizer)
    missing = {}
    found = weights.resolve_files("conch", registry["conch"], offline=True, missing=missing)
    assert found == {"checkpoint": tmp_path / "pytorch_model.bin"} and list(missing) == ["text_tokenizer"]
    assert weights.is_cached("conch", registry["conch"])
    listed = weights.missing_files("conch", registry["conch"])
    assert [(wf.role, wf.text) for wf, _ in listed] == [("text_tokenizer", True)]


def test_llava_linear_projector_is_a_bare_linear():
    from medprobe.models.llava_family import build_projector

    assert set(build_projector("linear", 8, 4).state_dict()) == {"weight", "bias"}  # mm_projector.weight
    assert set(build_projector("mlp2x_gelu", 8, 4).state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert build_projector("identity", 8, 8).state_dict() == {}


def test_llava_follows_the_checkpoints_aspect_ratio_and_unfrozen_tower(registry, tmp_path):
    spec = tiny_llava(registry["llava"])
    released = build_encoder("llava", {**spec, "weights": {"source": "random", "seed": 3}})
    files = write_llava_release(released, tmp_path, spec, image_aspect_ratio=None)
    loaded = build_encoder("llava", spec, files)
    assert "pad_to_square" not in loaded.preprocessing and loaded.preprocessing["crop_offset"] == "floor"
    image = Image.new("RGB", (400, 200), (10, 200, 30))
    assert loaded.transform(image).shape == (3, 336, 336)
    torch.testing.assert_close(features(loaded), features(released))

    # unfreeze_mm_vision_tower: the checkpoint's own tower (model.vision_tower.vision_tower.*) replaces the hub's
    own = build_encoder("llava", {**spec, "weights": {"source": "random", "seed": 4}})
    core = getattr(own.module["tower"], "vision_model", own.module["tower"])
    shard = {f"model.vision_tower.vision_tower.vision_model.{k}": v.contiguous() for k, v in core.state_dict().items()}
    shard.update({f"model.mm_projector.{k}": v.contiguous()
                  for k, v in released.module["projector"].state_dict().items()})
    save_file(shard, str(tmp_path / "model-00003-of-00003.safetensors"))
    config = json.loads(files["config"].read_text())
    files["config"].write_text(json.dumps({**config, "unfreeze_mm_vision_tower": True}))
    unfrozen_files = {**{k: v for k, v in files.items() if not k.startswith("shard_")},
                      "shard_0": tmp_path / "model-00003-of-00003.safetensors"}
    patch_mean = {**spec, "feature_point": "patch_mean", "dim": 64}
    unfrozen = features(build_encoder("llava", patch_mean, unfrozen_files))
    torch.testing.assert_close(unfrozen, features(build_encoder("llava", {**patch_mean, "weights": {
        "source": "random", "seed": 4}})))  # the checkpoint's tower, not the hub's
    assert not torch.allclose(unfrozen, features(build_encoder("llava", {**patch_mean, "weights": {
        "source": "random", "seed": 3}})))


def test_s2_is_the_tower_on_tiles_of_three_scales_area_pooled(registry):
    from medprobe.models.llava_family import s2_forward

    def patches(x):  # a patchify 'tower': 14-px patches averaged -> one token per patch
        tokens = torch.nn.functional.avg_pool2d(x, 14)
        return tokens.flatten(2).transpose(1, 2)

    x = torch.randn(2, 3, 1008, 1008, generator=torch.Generator().manual_seed(0))
    out = s2_forward(patches, x, [336, 672, 1008], 336)
    assert out.shape == (2, 576, 9)
    small = torch.nn.functional.interpolate(x, size=(336, 336), mode="bicubic")
    torch.testing.assert_close(out[..., :3], patches(small))  # the first scale is the plain tower at 336
    # the largest scale: 3 x 3 tiles of the full image, each 24 x 24 tokens, merged, then 3 x 3 averaged
    full = torch.nn.functional.avg_pool2d(x, 14)  # (2, 3, 72, 72): the tiles' tokens in place
    torch.testing.assert_close(out[..., 6:], torch.nn.functional.avg_pool2d(full, 3).flatten(2).transpose(1, 2))


def test_flair_resize_truncates_and_antialiases_the_float_image():
    from medprobe.models.transforms import LongSideResizePad

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (796, 772, 3), dtype=np.uint8))
    x = LongSideResizePad(512)(image)
    # FLAIR: (int(796 / (796 / 512)), int(772 / (796 / 512))) = (512, 496); round() would give 497
    assert x[:, :, 495].abs().sum() > 0 and x[:, :, 496:].abs().max() == 0
    reference = torch.nn.functional.interpolate(torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)
                                                [None], size=(512, 496), mode="bilinear", antialias=True)[0]
    torch.testing.assert_close(x[:, :, :496], reference)


def test_local_weights_folder_is_a_copy_of_the_models_repository(registry, tmp_path, monkeypatch):
    from medprobe import weights

    folder = tmp_path / "llava-med-v1.5-mistral-7b"  # e.g. `hf download ... --local-dir`, or a copied snapshot
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"unfreeze_mm_vision_tower": False}))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00004.safetensors",
        "model.mm_projector.0.weight": "model-00003-of-00004.safetensors",
        "model.vision_tower.vision_tower.vision_model.post_layernorm.weight": "model-00004-of-00004.safetensors"}}))
    (folder / "model-00003-of-00004.safetensors").write_bytes(b"projector")
    tower = {"config.json": tmp_path / "tower_config.json", "model.safetensors": tmp_path / "tower.safetensors"}

    def hf_file(model_id, repo, name, revision=None, offline=False):
        assert repo == "openai/clip-vit-large-patch14-336", f"{repo} is in the local folder"
        if name not in tower:
            raise weights.NotCached(f"{name} not cached")
        return tower[name]

    monkeypatch.setattr(weights, "hf_file", hf_file)
    found = weights.resolve_files("llava_med", registry["llava_med"], offline=True, local_path=folder)
    assert found == {"tower_config": tower["config.json"], "tower": tower["model.safetensors"],
                     "config": folder / "config.json", "weights_index": folder / "model.safetensors.index.json",
                     "shard_0": folder / "model-00003-of-00004.safetensors"}  # the projector's shard only
    (folder / "model-00003-of-00004.safetensors").unlink()
    assert [(wf.role, where) for wf, where in weights.missing_files("llava_med", registry["llava_med"], folder)] == \
        [("shard_0", str(folder / "model-00003-of-00004.safetensors"))]
