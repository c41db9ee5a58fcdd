"""The DLILP zero-shot protocol (medprobe.cxr_zeroshot) against a direct transcription of the authors' code
(jusiro/DLILP@2c9d3011a04de994041ed05d15135d1e873c04b2: cxrvlms/modeling/model.py TextModel, ProjectionLayer,
VLMModel.compute_text_embeddings / select_class_prototypes; cxrvlms/modeling/prompts.py generate_prompt_ensemble /
generate_name_prompt; cxrvlms/transferability/data/dataloader.py get_dataloader_splits' use of `random`;
cxrvlms/transferability/modeling/adapters.py ZeroShot.predict; main_transferability.py's DLILP head swap), on a small
random Bio_ClinicalBERT-shaped tower (hidden 768, 3 layers so that hidden states 2 and -1 differ) with a tiny
vocabulary, random weights in the authors' state-dict layout, and random 2,048-d pooled image features."""

from __future__ import annotations

import copy
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from medprobe import cxr_zeroshot as zs
from medprobe import transfer
from medprobe.errors import EncoderError

MIRROR = Path("/work/.mirror/jusiro+DLILP/repo")
COMMIT = "2c9d3011a04de994041ed05d15135d1e873c04b2"
COVID4 = ["Normal", "COVID", "Pneumonia", "Lung Opacity"]
HEADS = 2
WORDS = ("a radiology image of lung opacity normal no findings covid patchy confluent ground glass consolidation "
         "pneumonia focal early round small viral bacterial at the mid upper lower left right lobe zone bases base "
         "bilateral middle in peripheral it is contagious disease caused by virus . , - opacities thickening pleural "
         "effusions commonly appear infection absence diseases and infirmity indicating structure").split()


# ---------------------------------------------------------------- the authors' code, transcribed (not imported)
class AuthorsProjectionLayer(torch.nn.Module):
    def __init__(self, layer, projection=True, norm=True):
        super().__init__()
        self.apply_projection = projection
        if projection:
            self.norm_modality = False
        else:
            self.norm_modality = norm
        self.norm_projection = norm
        self.projection = layer

    def forward(self, x):
        if self.norm_modality:
            x = x / x.norm(dim=-1, keepdim=True)
        if self.apply_projection:
            x = self.projection(x)
            if self.norm_projection:
                x = x / x.norm(dim=-1, keepdim=True)
        return x


class AuthorsTextModel(torch.nn.Module):
    def __init__(self, tokenizer, config, proj_dim=512, proj_bias=False, projection=True, norm=True):
        super().__init__()
        from transformers import AutoModel

        self.tokenizer = tokenizer
        self.tokenizer.model_max_length = 77
        config.output_hidden_states = True  # AutoModel.from_pretrained(bert_type, output_hidden_states=True)
        self.model = AutoModel.from_config(config).eval()  # from_pretrained returns the model in eval mode
        self.projection_head_text = AuthorsProjectionLayer(layer=torch.nn.Linear(768, proj_dim, bias=proj_bias),
                                                           projection=projection, norm=norm)

    def forward(self, input_ids, attention_mask):
        output = self.model(input_ids=input_ids, attention_mask=attention_mask)
        last_hidden_states = torch.stack([output['hidden_states'][1], output['hidden_states'][2],
                                          output['hidden_states'][-1]])
        embed = last_hidden_states.permute(1, 0, 2, 3).mean(2).mean(1)
        embed = self.projection_head_text(embed)
        return embed


class AuthorsVision(torch.nn.Module):
    """VisionModel's heads (the backbone is the embed step's; its pooled output is the input here)."""

    def __init__(self, dlilp):
        super().__init__()
        self.projection_head_vision = AuthorsProjectionLayer(torch.nn.Linear(2048, 512, bias=False))
        if dlilp:
            self.projection_head2 = AuthorsProjectionLayer(torch.nn.Linear(2048, 512, bias=False))

    def forward(self, pooled):
        return self.projection_head_vision(pooled)


class AuthorsVLM(torch.nn.Module):
    def __init__(self, tokenizer, config, learning_criteria, categories, prompt_data):
        super().__init__()
        self.learning_criteria = learning_criteria
        self.caption = "A radiology image of [CLS]"
        self.data = prompt_data
        self.categories = categories
        self.vision_model = AuthorsVision(learning_criteria == "dlilp")
        if learning_criteria != "unimodal":
            self.text_model = AuthorsTextModel(tokenizer, config)
        else:
            self.text_model = None
            self.class_prototypes = torch.nn.Parameter(torch.randn(len(categories), 512))
        self.logit_scale = torch.nn.Parameter(torch.log(torch.tensor(1 / 0.07)) + torch.rand(()))
        if learning_criteria == "dlilp":
            self.logit_scale_head2 = torch.nn.Parameter(torch.log(torch.tensor(1 / 0.07)) - torch.rand(()))
            self.class_prototypes = torch.nn.Parameter(torch.randn(len(categories), 512))

    def compute_text_embeddings(self, categories, prompt_type="names"):
        text_embeds_dict = {}
        if prompt_type == "ensemble":
            prompts = authors_generate_prompt_ensemble(self.data, 100)
        elif prompt_type == "description":
            prompts = copy.deepcopy(self.data["descriptions_prompts"])
        else:
            prompts = authors_generate_name_prompt(self.data, template=self.caption)
        for iKey in range(len(categories)):
            with torch.no_grad():
                descriptions = prompts[categories[iKey]]
                text_token = self.text_model.tokenizer(descriptions, truncation=True, padding=True,
                                                       return_tensors='pt')
                input_ids = text_token["input_ids"].to(torch.long)
                attention_mask = text_token["attention_mask"].to(torch.long)
                text_embeds = self.text_model(input_ids, attention_mask)
            text_embeds_dict[categories[iKey]] = text_embeds.mean(0).unsqueeze(0)
        text_embeds = torch.concat(list(text_embeds_dict.values()))
        return text_embeds_dict, text_embeds, self.logit_scale

    def select_class_prototypes(self, categories):
        categories = copy.deepcopy(categories)
        text_embeds_dict = {}
        embedding_categories = []
        for iKey in range(len(categories)):
            if categories[iKey] == "Normal":
                embedding_categories.append(["No Finding"])
            elif categories[iKey] == "COVID":
                embedding_categories.append(["Lung Opacity", "Consolidation"])
            elif categories[iKey] == "No COVID":
                embedding_categories.append(["No Finding"])
            elif categories[iKey] == "Effusion":
                embedding_categories.append(["Pleural Effusion"])
            else:
                embedding_categories.append([categories[iKey]])
            class_embedding = []
            for ii in range(len(embedding_categories[iKey])):
                idx = np.argwhere([embedding_categories[iKey][ii].lower() == iCat
                                   for iCat in self.categories]).item()
                class_embedding.append(self.class_prototypes[idx, :].clone().unsqueeze(0))
            class_prototype = torch.cat(class_embedding, 0).mean(0).unsqueeze(0)
            text_embeds_dict[categories[iKey]] = class_prototype / class_prototype.norm(dim=-1, keepdim=True)
        text_embeds = torch.concat(list(text_embeds_dict.values()))
        return text_embeds_dict, text_embeds, self.logit_scale


def authors_generate_prompt_ensemble(data, n=100):
    assemble_prompts = copy.deepcopy(data["assemble_prompts"])
    for iCategory in data["categories_all"]:
        if iCategory not in list(assemble_prompts.keys()):
            assemble_prompts[iCategory] = {}
            assemble_prompts[iCategory]["severity"] = {""}
            assemble_prompts[iCategory]["description"] = {""}
            assemble_prompts[iCategory]["subtype"] = {iCategory}
            assemble_prompts[iCategory]["location"] = {""}
    prompts = {}
    for k, v in assemble_prompts.items():
        cls_prompts = []
        keys = list(v.keys())
        for k0 in v[keys[0]]:
            for k1 in v[keys[1]]:
                for k2 in v[keys[2]]:
                    prompt = f"{k0} {k1} {k2}".replace("   ", " ").replace("  ", " ")
                    if prompt[0] == " ":
                        prompt = prompt[1:]
                    if prompt[-1] == " ":
                        prompt = prompt[:-1]
                    cls_prompts.append(prompt.lower())
        if n is not None and n < len(cls_prompts):
            prompts[k] = random.sample(cls_prompts, n)
        else:
            prompts[k] = cls_prompts
    return prompts


def authors_generate_name_prompt(data, template="A radiology image of [CLS]"):
    prompts = {}
    for iCat in data["categories_all"]:
        prompts[iCat] = template.replace("[CLS]", iCat).lower()
    return prompts


def authors_split_random_use(labels, shots_train, shots_val, shots_test, balance, seed):
    """get_dataloader_splits' consumption of the global `random` (rows reduced to their labels)."""
    def get_shots(shots_str, N):
        if "%" in str(shots_str):
            return int(int(shots_str[:-1]) / 100 * N)
        return int(shots_str)

    data = [{"label": int(v)} for v in labels]
    random.seed(seed)
    random.shuffle(data)
    labels = [data_i["label"] for data_i in data]
    data_train = []
    for iLabel in np.unique(labels):
        idx = list(np.squeeze(np.argwhere(np.asarray(labels) == iLabel)))
        train_samples, test_samples = get_shots(shots_train, len(idx)), get_shots(shots_test, len(idx))
        [data_train.append(data[iidx]) for iidx in idx[test_samples:test_samples + train_samples]]
    if balance:
        train_labels = [s["label"] for s in data_train]
        counts = np.bincount(train_labels)
        for iLabel in np.unique(train_labels):
            idx = list(np.argwhere(np.array(train_labels) == iLabel)[:, 0])
            if np.max(counts) - counts[iLabel] > 0:
                idx += random.choices(idx, k=np.max(counts) - counts[iLabel])


def authors_zero_shot_predict(model, pooled, targets, prompt_type):
    """LanguageAdapterWrapper.__init__ + ZeroShot.predict (no tta) on the pooled features."""
    if model.learning_criteria == "unimodal":
        _, text_embeds, logit_scale = model.select_class_prototypes(targets)
    else:
        _, text_embeds, logit_scale = model.compute_text_embeddings(targets, prompt_type=prompt_type)
    with torch.no_grad():
        X = model.vision_model(torch.as_tensor(pooled))
        score = torch.matmul(X, text_embeds.t()) * logit_scale.exp()
    return text_embeds.detach(), score.numpy()


def authors_dlilp_swap(model, experiment):
    if model.learning_criteria == "dlilp":
        if "new" not in experiment:
            model.logit_scale = model.logit_scale_head2
            model.vision_model.projection_head_vision = model.vision_model.projection_head2
            model.learning_criteria = "unimodal"


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def registry(repo):
    from medprobe.registry import load_models

    return load_models(repo / "config" / "models.yaml")


@pytest.fixture(autouse=True)
def _global_random():
    state = random.getstate()
    yield
    random.setstate(state)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import BertTokenizer

    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(WORDS)]) + "\n")
    tok = BertTokenizer(vocab=str(vocab))
    assert tok.convert_tokens_to_ids("lung") != tok.unk_token_id  # the vocabulary was read
    return tok


def small_config(vocab_size):
    from transformers import BertConfig

    config = BertConfig(vocab_size=vocab_size, hidden_size=768, num_hidden_layers=3, num_attention_heads=HEADS,
                        intermediate_size=64, max_position_embeddings=80)
    config._attn_implementation = "eager"
    return config


def authors_model(tokenizer, criterion, seed=0):
    torch.manual_seed(seed)
    data = zs.prompt_data()
    model = AuthorsVLM(tokenizer, small_config(len(tokenizer.get_vocab())), criterion,
                       data["prototype_categories"], data)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 0:
                p.normal_(0, 0.05)
    model.eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["vision_model.model.conv1.weight"] = torch.zeros(1)  # the backbone: the embed step's, ignored here
    if criterion != "unimodal":
        state["text_model.model.embeddings.position_ids"] = torch.arange(80)[None]  # older transformers kept it
    return model, state


POOLED = np.random.default_rng(0).normal(size=(24, 2048)).astype(np.float32)


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("criterion,prompt_set", [("clip", "names"), ("unicl", "ensemble"),
                                                  ("clip", "description"), ("unimodal", "names")])
def test_prototypes_and_scores_match_authors(tokenizer, criterion, prompt_set):
    model, state = authors_model(tokenizer, criterion)
    labels = [0] * 30 + [1] * 20 + [2] * 10 + [3] * 25
    authors_split_random_use(labels, 16, "0%", "0%", True, seed=0)  # the global state the adapter meets
    ref_protos, ref_scores = authors_zero_shot_predict(model, POOLED, COVID4, prompt_set)

    rng = zs.rng_after_split(labels, 0, shots_train=16) if prompt_set == "ensemble" else None
    head = zs.zero_shot_head(state, COVID4, criterion=criterion, experiment="covid_train_4class",
                             prompt_set=prompt_set, tokenizer=tokenizer, rng=rng,
                             arch_config={"num_attention_heads": HEADS})
    assert head.head == ("label" if criterion == "unimodal" else "text")
    np.testing.assert_allclose(head.prototypes.numpy(), ref_protos.numpy(), rtol=1e-5, atol=1e-6)
    scores = zs.zero_shot_scores(POOLED, head)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
    assert (scores.argmax(1) == ref_scores.argmax(1)).all()
    # a text prototype is a mean of unit vectors, not re-normalised (unit only for one prompt); the label head's is
    norms = head.prototypes.norm(dim=-1).numpy()
    if head.head == "label" or prompt_set == "names":
        assert np.allclose(norms, 1.0)
    else:
        assert (norms < 1 - 1e-4).any()


def test_dlilp_swap_on_covid_uses_label_head(tokenizer):
    model, state = authors_model(tokenizer, "dlilp")
    authors_dlilp_swap(model, "covid_train_2class")
    ref_protos, ref_scores = authors_zero_shot_predict(model, POOLED, ["Normal", "COVID"], "names")
    for prompt_set in ("names", "description"):  # ignored by the label head: Name = Desc.
        head = zs.zero_shot_head(state, ["Normal", "COVID"], criterion="dlilp", experiment="covid_train_2class",
                                 prompt_set=prompt_set, tokenizer=tokenizer)
        assert head.head == "label"
        np.testing.assert_allclose(zs.zero_shot_scores(POOLED, head), ref_scores, rtol=1e-5, atol=1e-5)
    assert zs.uses_label_head("dlilp", "vindr_train_new") is False
    assert zs.uses_label_head("clip", "covid_train_4class") is False


def test_run_zero_shot_scores_the_external_test_rows(tokenizer):
    model, state = authors_model(tokenizer, "clip")
    rng = np.random.default_rng(1)
    pool_labels = np.repeat([0, 1, 2, 3], 20)
    test_labels = np.tile([0, 1, 2, 3], 6)
    sample_ids = ([f"test/{i:06d}/t{i}.png" for i in range(24)] +  # file order need not be partition order
                  [f"train/{i:06d}/p{i}.png" for i in range(80)])
    labels = np.concatenate([test_labels, pool_labels])
    features = np.concatenate([POOLED, rng.normal(size=(80, 2048)).astype(np.float32)])
    out = zs.run_zero_shot(features, labels, sample_ids, state, COVID4, criterion="clip",
                           experiment="covid_train_4class", prompt_set="ensemble", tokenizer=tokenizer,
                           arch_config={"num_attention_heads": HEADS})
    authors_split_random_use(pool_labels, 16, "0%", "0%", True, seed=0)
    _, ref_scores = authors_zero_shot_predict(model, POOLED, COVID4, "ensemble")
    assert list(out["rows"]) == list(range(24))
    np.testing.assert_allclose(out["scores"], ref_scores, rtol=1e-5, atol=1e-5)
    assert out["metrics"]["aca"] == transfer.fold_metrics(test_labels, ref_scores)["aca"]


@pytest.mark.parametrize("labels,shots", [([0] * 30 + [1] * 20 + [2] * 10 + [3] * 25, 16),  # class 2 is topped up
                                          ([0] * 40 + [1] * 40, 16), ([0] * 7 + [1] * 50 + [2] * 3, "20%")])
def test_ensemble_sampling_follows_the_fold_split_draw(labels, shots):
    data = zs.prompt_data()
    authors_split_random_use(labels, shots, "0%", "0%", True, seed=0)
    ref = authors_generate_prompt_ensemble(data, 100)
    ours = zs.ensemble_prompts(zs.rng_after_split(labels, 0, shots_train=shots), 100)
    assert ours == ref and list(ours) == list(ref)
    assert {k: len(v) for k, v in ours.items() if len(v) == 100}.keys() == {"Atelectasis", "Consolidation",
                                                                            "Pneumonia"}
    # another fold's draw gives other samples: the state matters
    assert zs.ensemble_prompts(zs.rng_after_split(labels, 1, shots_train=shots))["Pneumonia"] != ref["Pneumonia"]


def test_strict_text_loading_names_the_key(tokenizer):
    _, state = authors_model(tokenizer, "clip")
    kwargs = dict(criterion="clip", experiment="covid_train_4class", tokenizer=tokenizer,
                  arch_config={"num_attention_heads": HEADS})
    missing = dict(state)
    del missing["text_model.model.encoder.layer.1.output.dense.bias"]
    with pytest.raises(EncoderError, match=r"text_model\.model\.encoder\.layer\.1\.output\.dense\.bias"):
        zs.zero_shot_head(missing, COVID4, **kwargs)
    extra = dict(state, **{"text_model.model.encoder.layer.1.output.extra": torch.zeros(3)})
    with pytest.raises(EncoderError, match=r"text_model\.model\.encoder\.layer\.1\.output\.extra"):
        zs.zero_shot_head(extra, COVID4, **kwargs)
    with pytest.raises(EncoderError, match="class_prototypes"):  # a unimodal-only key in a clip checkpoint
        zs.zero_shot_head(dict(state, class_prototypes=torch.zeros(85, 512)), COVID4, **kwargs)
    with pytest.raises(EncoderError, match="logit_scale"):
        zs.zero_shot_head({k: v for k, v in state.items() if k != "logit_scale"}, COVID4, **kwargs)


def test_covid_classes_in_every_prompt_set():
    """Each set the authors can build has all four COVID classes (Lung Opacity reaches the ensemble through
    CATEGORIES_ALL as the bare name); none would KeyError; the label-head aliases find their CATEGORIES rows."""
    for prompt_set in zs.PROMPT_SETS:
        prompts = zs.class_prompts(prompt_set, COVID4, random.Random(0))
        assert all(p and all(isinstance(s, str) and s for s in p) for p in prompts)
    assert zs.class_prompts("names", COVID4) == [["a radiology image of normal"], ["a radiology image of covid"],
                                                 ["a radiology image of pneumonia"],
                                                 ["a radiology image of lung opacity"]]
    ensemble = zs.class_prompts("ensemble", COVID4, random.Random(0))
    assert ensemble[1] == ["patchy ground glass covid", "patchy ground glass opacity",
                           "patchy ground glass consolidation", "confluent ground glass covid",
                           "confluent ground glass opacity", "confluent ground glass consolidation"]
    assert ensemble[0] == ["normal", "no findings"] and ensemble[3] == ["lung opacity"]
    assert zs.label_prototypes(torch.randn(85, 512), COVID4).shape == (4, 512)
    with pytest.raises(Exception, match="Ground Glass"):
        zs.class_prompts("description", ["Ground Glass"])


def test_prompts_yaml_is_the_authors_module():
    if not (MIRROR / "HEAD").exists():
        pytest.skip(f"no mirror of jusiro/DLILP at {MIRROR}")

    def module(path):
        namespace = {}
        exec(subprocess.run(["git", "-C", str(MIRROR), "show", f"{COMMIT}:{path}"], check=True, capture_output=True,
                            text=True).stdout, namespace)
        return namespace

    prompts, constants = module("cxrvlms/modeling/prompts.py"), module("cxrvlms/modeling/constants.py")
    data = zs.prompt_data()
    assert data["categories_all"] == prompts["CATEGORIES_ALL"]
    assert data["descriptions_prompts"] == prompts["DESCRIPTIONS_PROMPTS"]
    assert list(data["descriptions_prompts"]) == list(prompts["DESCRIPTIONS_PROMPTS"])
    assert data["assemble_prompts"] == prompts["ASSEMBLE_PROMPTS"]
    assert [list(v) for v in data["assemble_prompts"].values()] == [list(v) for v in
                                                                    prompts["ASSEMBLE_PROMPTS"].values()]
    assert list(data["assemble_prompts"]) == list(prompts["ASSEMBLE_PROMPTS"])
    assert data["prototype_categories"] == constants["CATEGORIES"]
    assert zs.name_prompts() == prompts["generate_name_prompt"]()
    random.seed(3)
    ref = prompts["generate_prompt_ensemble"](100)
    assert zs.ensemble_prompts(random.Random(3)) == ref


# ---------------------------------------------------------------- the workflow's rule, from the fetch record on
def covid_embeddings(path, class_names, seed=3, test=None):
    """An embedding file as the covid adapters write it: train/ (the --experiment pool) and test/ rows, pooled."""
    from medprobe.store import write_embeddings

    rng = np.random.default_rng(seed)
    pool = np.repeat(np.arange(len(class_names)), 20)
    test = np.tile(np.arange(len(class_names)), 6) if test is None else np.asarray(test)
    ids = [f"test/{i:06d}/t{i}.png" for i in range(len(test))] + [f"train/{i:06d}/p{i}.png" for i in range(len(pool))]
    labels = np.concatenate([test, pool])
    features = np.concatenate([POOLED[:len(test)], rng.normal(size=(len(pool), 2048))]).astype(np.float32)
    attrs = {"model_id": "m", "dataset_id": "covid", "class_names": list(class_names), "feature_point": "pooled",
             "medprobe_version": "t", "device": "cpu", "dtype": "float32", "created_utc": "t", "weights": "w",
             "preprocessing": "{}", "manifest_sha256": "0" * 64}
    write_embeddings(path, features, labels, ids, [""] * len(ids), attrs)
    return features[:len(test)], test, pool


def fetched(tmp_path, monkeypatch, model_id, spec, checkpoint, tokenizer):
    """fetch_weights' record of a local checkpoint, with Bio_ClinicalBERT's config.json and vocab.txt (a tiny BERT
    with the tower's heads) standing in the Hugging Face cache at the registry's pinned commit."""
    from transformers import BertConfig

    from medprobe import weights

    bert = tmp_path / "bert"
    bert.mkdir()
    vocab = tokenizer.get_vocab()
    (bert / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n")
    BertConfig(vocab_size=len(tokenizer.get_vocab()), num_attention_heads=HEADS, hidden_size=768).to_json_file(
        bert / "config.json")
    pinned = spec["weights"]["revisions"][zs.TOKENIZER_ID]

    def hf_file(model_id, repo, name, revision=None, offline=False):
        assert repo == zs.TOKENIZER_ID and revision == pinned
        return bert / name

    monkeypatch.setattr(weights, "hf_file", hf_file)
    record = weights.fetch_weights(model_id, spec, tmp_path / f"{model_id}.json", local_path=checkpoint,
                                   offline=True)
    assert set(record["files"]) == {"checkpoint", "text_config", "text_vocab"}
    return tmp_path / f"{model_id}.json"


def medclip_release(state):
    """The authors' VLMModel state dict back in MedCLIP's release layout (what load_from_pretrained renames from):
    text_model.projection_head, and the vision projection as the ResNet's fc."""
    release = {k: v for k, v in state.items() if not k.startswith("vision_model.projection_head_vision")}
    release["text_model.projection_head.weight"] = release.pop("text_model.projection_head_text.projection.weight")
    release["vision_model.model.fc.weight"] = state["vision_model.projection_head_vision.projection.weight"]
    return release


PARAMS = {"prompt_sets": ["names", "ensemble", "description"], "dlilp_head_swap": True, "test_set": "test",
          "shots_train": 16, "balance": True}


def test_rule_scores_medclip_in_its_release_layout_as_the_authors_do(registry, tokenizer, tmp_path, monkeypatch):
    """MedCLIP's own state dict (text_model.projection_head, vision fc) through load_from_pretrained's renames, from
    the fetch record to the rule's table: every prompt set's ACA equals the authors' code on the same features."""
    model, state = authors_model(tokenizer, "clip")
    torch.save(medclip_release(state), tmp_path / "pytorch_model.bin")
    record = fetched(tmp_path, monkeypatch, "medclip_r50", registry["medclip_r50"], tmp_path / "pytorch_model.bin",
                     tokenizer)
    # the test labels are the authors' ensemble predictions: ACA 1 for that prompt set unless one prediction differs
    pool_labels = np.repeat(np.arange(4), 20)
    authors_split_random_use(pool_labels, 16, "0%", "0%", True, seed=0)
    _, ref_scores = authors_zero_shot_predict(model, POOLED, COVID4, "ensemble")
    assert len(set(ref_scores.argmax(1))) > 1
    test_features, test_labels, _ = covid_embeddings(tmp_path / "e.h5", COVID4, test=ref_scores.argmax(1))
    table = zs.run_dlilp_zeroshot(tmp_path / "e.h5", record, tmp_path / "z.tsv", dataset_id="covid_4class",
                                  model_id="medclip_r50", model_spec=registry["medclip_r50"], params=PARAMS)
    assert set(table["experiment"]) == {"covid_train_4class"} and set(table["head"]) == {"text"}
    assert (table["n_eval"] == len(test_labels)).all()
    for prompt_set in PARAMS["prompt_sets"]:
        authors_split_random_use(pool_labels, 16, "0%", "0%", True, seed=0)
        _, ref_scores = authors_zero_shot_predict(model, test_features, COVID4, prompt_set)
        ours = table[(table.prompt_set == prompt_set) & (table.metric == "aca")]["value"].item()
        assert ours == transfer.fold_metrics(test_labels, ref_scores)["aca"], prompt_set
    assert table[(table.prompt_set == "ensemble") & (table.metric == "aca")]["value"].item() == 1.0
    # the rule's file is the table
    import pandas as pd
    assert pd.read_csv(tmp_path / "z.tsv", sep="\t").equals(table)


def test_rule_scores_dlilp_with_its_label_head_on_covid_and_can_keep_the_text_head(registry, tokenizer, tmp_path,
                                                                                    monkeypatch):
    model, state = authors_model(tokenizer, "dlilp")
    torch.save(state, tmp_path / "dlilp.pth")
    spec = {**registry["dlilp_mc"], "weights": {**registry["dlilp_mc"]["weights"], "source": "local"}}
    record = fetched(tmp_path, monkeypatch, "dlilp_mc", spec, tmp_path / "dlilp.pth", tokenizer)
    classes = ["Normal", "COVID"]
    authors = copy.deepcopy(model)
    authors_dlilp_swap(authors, "covid_train_2class")
    _, ref_label = authors_zero_shot_predict(authors, POOLED, classes, "names")
    assert len(set(ref_label.argmax(1))) == 2
    # the test labels are the authors' label-head predictions: ACA 1 unless one of ours differs
    test_features, test_labels, pool_labels = covid_embeddings(tmp_path / "e.h5", classes, test=ref_label.argmax(1))
    kwargs = dict(dataset_id="covid_2class", model_id="dlilp_mc", model_spec=spec)
    swapped = zs.run_dlilp_zeroshot(tmp_path / "e.h5", record, tmp_path / "z.tsv", params=PARAMS, **kwargs)
    aca = swapped[swapped.metric == "aca"]
    assert set(aca["head"]) == {"label"} and aca["value"].nunique() == 1  # Name = Desc. under the swap
    text = zs.run_dlilp_zeroshot(tmp_path / "e.h5", record, tmp_path / "t.tsv",
                                 params={**PARAMS, "dlilp_head_swap": False}, **kwargs)
    assert set(text["head"]) == {"text"}
    assert aca["value"].iloc[0] == 1.0
    authors_split_random_use(pool_labels, 16, "0%", "0%", True, seed=0)
    _, ref_text = authors_zero_shot_predict(model, test_features, classes, "ensemble")
    ours = text[(text.prompt_set == "ensemble") & (text.metric == "aca")]["value"].item()
    assert ours == transfer.fold_metrics(test_labels, ref_text)["aca"]


def test_rule_refuses_what_it_cannot_score(registry, tokenizer, tmp_path, monkeypatch):
    _, state = authors_model(tokenizer, "clip")
    torch.save(state, tmp_path / "medclip.bin")  # already in VLMModel's layout: not MedCLIP's release
    record = fetched(tmp_path, monkeypatch, "medclip_r50", registry["medclip_r50"], tmp_path / "medclip.bin",
                     tokenizer)
    covid_embeddings(tmp_path / "e.h5", COVID4)
    kwargs = dict(dataset_id="covid_4class", model_id="medclip_r50", params=PARAMS)
    with pytest.raises(EncoderError, match="text_model.projection_head.weight"):
        zs.run_dlilp_zeroshot(tmp_path / "e.h5", record, tmp_path / "z.tsv", model_spec=registry["medclip_r50"],
                              **kwargs)
    with pytest.raises(Exception, match="no dlilp_zero_shot entry"):
        zs.run_dlilp_zeroshot(tmp_path / "e.h5", record, tmp_path / "z.tsv", model_spec=registry["medklip"],
                              **kwargs)
    assert not (tmp_path / "z.tsv").exists()


def test_table3_through_snakemake_from_the_fetch_records_to_the_report(repo, registry, tokenizer, tmp_path,
                                                                        monkeypatch):
    """`snakemake table3` with config/dlilp.yaml on COVID 2-class: the dlilp_zeroshot jobs (MedCLIP in its release
    layout, DLILP under the swap) read the fetch records and embeddings in place, their files equal the library's
    scores for the same inputs, table3_tables lays them out beside the published Table 3, and the report holds both
    tables. The embed and fetch_weights jobs are left out (--allowed-rules): their outputs are constructed here."""
    import zipfile

    import pandas as pd
    import yaml

    from conftest import job_counts, run_snakemake

    work = tmp_path / "work"
    (work / "results" / "weights").mkdir(parents=True)
    classes = ["Normal", "COVID"]
    release = medclip_release(authors_model(tokenizer, "clip")[1])
    _, dlilp = authors_model(tokenizer, "dlilp", seed=1)
    specs = {"medclip_r50": registry["medclip_r50"],
             "dlilp_mc": {**registry["dlilp_mc"], "weights": {**registry["dlilp_mc"]["weights"], "source": "local"}}}
    expected = {}
    for model_id, state in (("medclip_r50", release), ("dlilp_mc", dlilp)):
        store = tmp_path / model_id
        store.mkdir()
        torch.save(state, store / "checkpoint.pth")
        record = fetched(store, monkeypatch, model_id, specs[model_id], store / "checkpoint.pth", tokenizer)
        (work / "results" / "weights" / f"{model_id}.json").write_text(record.read_text())
        embeddings = work / "results" / "embeddings" / "covid_2class" / f"{model_id}.h5"
        embeddings.parent.mkdir(parents=True, exist_ok=True)
        covid_embeddings(embeddings, classes)
        expected[model_id] = zs.run_dlilp_zeroshot(embeddings, record, store / "z.tsv", dataset_id="covid_2class",
                                                   model_id=model_id, model_spec=registry[model_id],
                                                   params={**PARAMS, "prompt_sets": ["names", "ensemble"]})

    config = yaml.safe_load((repo / "config" / "dlilp.yaml").read_text())
    config.update(models=["medklip", "medclip_r50", "dlilp_mc"], datasets=["covid_2class"])
    config["transfer_zeroshot"]["datasets"] = ["covid_2class"]
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    args = ("--configfile", str(work / "config.yaml"))
    plan = run_snakemake("table3", "--cores", "1", "--allowed-rules", "dlilp_zeroshot", "table3_tables", "table3",
                         *args, cwd=work)
    assert job_counts(plan.stdout + plan.stderr) == {"dlilp_zeroshot": 2, "table3_tables": 1, "table3": 1}  # medklip: no entry

    for model_id, table in expected.items():
        ours = pd.read_csv(work / "results" / "dlilp_zeroshot" / "covid_2class" / f"{model_id}.tsv", sep="\t")
        assert ours.equals(pd.read_csv(tmp_path / model_id / "z.tsv", sep="\t")), model_id
    layout = pd.read_csv(work / "results" / "tables" / "table3.tsv", sep="\t", dtype=str)
    assert layout["model"].tolist() == [registry["medclip_r50"]["name"], registry["dlilp_mc"]["name"]]
    assert layout["head"].tolist() == ["text", "label"]
    names = expected["medclip_r50"].query("prompt_set == 'names' and metric == 'aca'")["value"].item()
    assert f"{100 * names:.1f}" in layout.iloc[0].tolist()
    compared = pd.read_csv(work / "results" / "tables" / "table3_vs_published.tsv", sep="\t")
    assert set(compared["model_id"]) == {"medclip_r50", "dlilp_mc"} and set(compared["dataset_id"]) == {"covid_2class"}
    assert (compared["delta_pp"] - (compared["ours_pct"] - compared["published_pct"])).abs().max() < 0.051

    run_snakemake("--report", "report.zip", *args, "--", "table3", cwd=work)
    with zipfile.ZipFile(work / "report.zip") as archive:
        page = next(archive.read(n).decode() for n in archive.namelist() if n.endswith("/report.html"))
    for name in ("table3.html", "table3_vs_published.html"):
        assert f'"results/tables/{name}"' in page, name
