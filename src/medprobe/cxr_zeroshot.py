"""The DLILP study's zero-shot protocol (Table 3, COVID-19 2- and 4-class), as the authors run it on their own
checkpoints (VLMModel with learning_criteria clip / unicl / unimodal / dlilp).

Read from jusiro/DLILP@2c9d3011a04de994041ed05d15135d1e873c04b2:
- main_transferability.py `process` and local_data/examples/zeroshot.txt: `--method zero_shot --folds 1
  --shots_train 16 --shots_test 0% --project_features True --norm_features True`, `--experiment covid_train_{2,4}class
  --experiment_test covid_test_{2,4}class`, `--prompt_type names` or the default `ensemble`. The score is computed on
  the external test set; fold 0 only.
- cxrvlms/transferability/modeling/adapters.py `LanguageAdapterWrapper`, `ZeroShot.predict`: class prototypes from
  `compute_text_embeddings` (or `select_class_prototypes` when the model's criterion is "unimodal"); score =
  image @ prototypes.T * exp(logit_scale), the raw parameter (VLMModel.compute_logits' clamp is not on this path);
  `preds = score` (the softmax/sigmoid is computed and overwritten), so the prediction is the argmax of the score.
- cxrvlms/modeling/model.py `TextModel.forward`: Bio_ClinicalBERT (AutoModel, output_hidden_states), the text feature
  is the mean over ALL token positions (padding included: no mask is applied) of the average of hidden states 1, 2
  and -1; `ProjectionLayer` with projection=True: Linear 768->512 without bias, then L2 (no normalisation before it).
  `compute_text_embeddings`: one tokenizer call per class over that class's prompts (truncation, padding to the
  longest, model_max_length 77), prototype = mean of the L2-normalised prompt embeddings, NOT re-normalised.
  `select_class_prototypes`: rows of `class_prototypes` (CATEGORIES of constants.py) per target name through the
  aliases Normal -> No Finding, COVID -> Lung Opacity + Consolidation, No COVID -> No Finding, Effusion -> Pleural
  Effusion; mean of the rows, then L2. `VisionModel.forward` with projection: pooled 2,048-d feature ->
  projection_head_vision (Linear 2048->512, no bias) -> L2.
- cxrvlms/modeling/prompts.py (data in resources/dlilp/prompts.yaml): `generate_name_prompt` ("names": ONE prompt
  per class, `caption.replace("[CLS]", name).lower()`, i.e. "a radiology image of lung opacity"),
  `generate_prompt_ensemble(100)` ("ensemble"), `DESCRIPTIONS_PROMPTS` ("description").

The DLILP two-head swap (main_transferability.py L75-80): for learning_criteria "dlilp" and every experiment whose
name lacks "new" (all but nihlt_*_new and vindr_*_new), the model's logit_scale becomes logit_scale_head2, its
projection_head_vision becomes projection_head2 and its criterion "unimodal", so zero-shot goes through
select_class_prototypes. The COVID experiments (covid_train_{2,4}class) hit it: DLILP's zero-shot on Table 3 uses its
label head, the prompt set is ignored, and its "Name" and "Desc." scores would be equal (see the spec's UNVERIFIED
note). `uses_label_head` encodes the rule. Note too that zeroshot.txt's DLILP lines pass `--experiment_test
covid_train_{n}class` (the training partition as the test set), unlike the clip/unicl/unimodal lines; whether
Table 3's DLILP row was scored that way is UNVERIFIED (`run_zero_shot(subset="pool")` scores the pool).

The ensemble's random draw: `set_seeds(42)` at import, then per fold get_dataloader_splits calls random.seed(fold),
random.shuffle(rows) and (balance) random.choices; the adapter is built after that, and generate_prompt_ensemble's
random.sample calls consume the same global stream. `rng_after_split` rebuilds that stream as a random.Random: seeded
with the fold, one shuffle of a list of the pool's length (its draws depend on the length only), then
transfer.balanced on the fold's pre-balance training rows (transfer.fold_split's own draws, which it does not expose).
The pool is the `--experiment` partition (covid_train_{n}class: the `train/` rows of the medprobe dataset).

Not reproduced: the authors run the text tower on GPU under float32 with the transformers release of their time (eager
attention; medprobe asks for eager too); float rounding may differ in the last bits, not the argmax in practice.
"""

from __future__ import annotations

import functools
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from medprobe import transfer
from medprobe.errors import EncoderError, RegistryError
from medprobe.paths import REPO_ROOT

log = logging.getLogger(__name__)

PROMPTS_PATH = REPO_ROOT / "resources" / "dlilp" / "prompts.yaml"
PROMPT_SETS = ("names", "ensemble", "description")
CRITERIA = ("clip", "unicl", "unimodal", "dlilp")
TOKENIZER_ID = "emilyalsentzer/Bio_ClinicalBERT"
MAX_LENGTH = 77  # TextModel: self.tokenizer.model_max_length = 77
ENSEMBLE_SIZE = 100  # compute_text_embeddings: generate_prompt_ensemble(100)
TEXT_HIDDEN = 768  # TextModel: Linear(768, proj_dim)
STALE_TEXT_KEYS = ("text_model.model.embeddings.position_ids",)  # load_from_pretrained drops it (version change)
VISION_BACKBONE = "vision_model.model."  # the pooled feature's backbone: loaded by the embed step, not here
BIO_CLINICAL_BERT = dict(num_attention_heads=12, hidden_act="gelu", layer_norm_eps=1e-12)  # its config.json


# ---------------------------------------------------------------- prompts (cxrvlms/modeling/prompts.py)
@functools.lru_cache(maxsize=4)
def _read_prompt_data(path: str) -> dict:
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError as err:
        raise RegistryError(f"{path}: the DLILP prompt data is missing; restore resources/dlilp/prompts.yaml from "
                            f"the repository") from err
    needed = ("caption", "categories_all", "assemble_prompts", "descriptions_prompts", "prototype_categories",
              "prototype_aliases")
    missing = [k for k in needed if k not in (data or {})]
    if missing:
        raise RegistryError(f"{path}: lacks {', '.join(missing)}; restore it from the repository")
    return data


def prompt_data(path: str | Path = PROMPTS_PATH) -> dict:
    """resources/dlilp/prompts.yaml: the authors' prompt dictionaries, in their order (read once, do not mutate)."""
    return _read_prompt_data(str(path))


def name_prompts(data: Mapping | None = None) -> dict[str, str]:
    """generate_name_prompt(template=caption): one lower-cased prompt (a string, not a list) per CATEGORIES_ALL name."""
    data = data or prompt_data()
    return {name: data["caption"].replace("[CLS]", name).lower() for name in data["categories_all"]}


def ensemble_prompts(rng: random.Random, n: int | None = ENSEMBLE_SIZE, data: Mapping | None = None
                     ) -> dict[str, list[str]]:
    """generate_prompt_ensemble(n) with `rng` in place of the global `random`: ASSEMBLE_PROMPTS, then each missing
    CATEGORIES_ALL name as {severity: "", description: "", subtype: name, location: ""}; per class the product of its
    FIRST THREE keys (in their order) joined by spaces, spaces squeezed as the authors do, lower-cased; `rng.sample`
    of n when there are more than n (Atelectasis, Consolidation and Pneumonia, in that order), else all."""
    data = data or prompt_data()
    assemble = {k: dict(v) for k, v in data["assemble_prompts"].items()}
    for name in data["categories_all"]:
        if name not in assemble:
            assemble[name] = {"severity": [""], "description": [""], "subtype": [name], "location": [""]}
    prompts = {}
    for name, parts in assemble.items():
        keys = list(parts)
        out = []
        for k0 in parts[keys[0]]:
            for k1 in parts[keys[1]]:
                for k2 in parts[keys[2]]:
                    prompt = f"{k0} {k1} {k2}".replace("   ", " ").replace("  ", " ")
                    if prompt[0] == " ":
                        prompt = prompt[1:]
                    if prompt[-1] == " ":
                        prompt = prompt[:-1]
                    out.append(prompt.lower())
        prompts[name] = rng.sample(out, n) if n is not None and n < len(out) else out
    return prompts


def description_prompts(data: Mapping | None = None) -> dict[str, list[str]]:
    """DESCRIPTIONS_PROMPTS (copied)."""
    data = data or prompt_data()
    return {k: list(v) for k, v in data["descriptions_prompts"].items()}


def class_prompts(prompt_set: str, class_names: Sequence[str], rng: random.Random | None = None,
                  data: Mapping | None = None) -> list[list[str]]:
    """The prompts of each class (in `class_names` order) that compute_text_embeddings tokenises together; "names"
    gives one prompt per class. A class the set lacks is a KeyError in the authors' code: an error here."""
    if prompt_set == "names":
        table = {k: [v] for k, v in name_prompts(data).items()}
    elif prompt_set == "ensemble":
        if rng is None:
            raise ValueError("the 'ensemble' prompt set needs the fold's generator (rng_after_split)")
        table = ensemble_prompts(rng, ENSEMBLE_SIZE, data)
    elif prompt_set == "description":
        table = description_prompts(data)
    else:
        raise RegistryError(f"unknown DLILP prompt set {prompt_set!r}; choose one of {', '.join(PROMPT_SETS)}")
    missing = [c for c in class_names if c not in table]
    if missing:
        raise RegistryError(f"DLILP prompt set {prompt_set!r} has no prompts for class(es) {missing} (the authors' "
                            f"code would raise KeyError); class names must be spelled as in {PROMPTS_PATH}")
    return [table[c] for c in class_names]


def rng_after_split(pool_labels: Sequence[int], fold: int = 0, *, shots_train: str | int = 16,
                    shots_test: str | int = "0%", shots_val: str | int = "0%", balance: bool = True) -> random.Random:
    """The global `random` state when the authors' adapter is built for `fold`: random.seed(fold), shuffle of the
    pool, balance_data's random.choices (see the module docstring). Defaults: zeroshot.txt's COVID lines."""
    split = transfer.fold_split(pool_labels, fold, shots_train=shots_train, shots_test=shots_test,
                                shots_val=shots_val, balance=False)
    rng = random.Random(fold)
    rng.shuffle(list(range(len(pool_labels))))  # the draws depend on the length only
    if balance and split["train"]:
        transfer.balanced(split["train"], [pool_labels[i] for i in split["train"]], rng)
    return rng


# ---------------------------------------------------------------- text tower (cxrvlms/modeling/model.py TextModel)
def load_tokenizer(name: str | Path = TOKENIZER_ID):
    """transformers.AutoTokenizer of Bio_ClinicalBERT, as TextModel builds it: a hub id (downloaded once into the
    Hugging Face cache) or the folder holding its config.json and vocab.txt (the fetch record's snapshot)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(name))
    tokenizer.model_max_length = MAX_LENGTH
    return tokenizer


def tokenize(tokenizer, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
    """TextModel.tokenizer(prompts, truncation=True, padding=True) with model_max_length 77."""
    tokens = tokenizer(list(prompts), truncation=True, padding=True, max_length=MAX_LENGTH, return_tensors="pt")
    return {"input_ids": tokens["input_ids"].to(torch.long), "attention_mask": tokens["attention_mask"].to(torch.long)}


class _Projection(nn.Module):
    """ProjectionLayer(projection=True, norm=True): Linear without bias, then L2 (keys `projection.weight`)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.projection = nn.Linear(dim_in, dim_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.projection(x)
        return x / x.norm(dim=-1, keepdim=True)


class TextTower(nn.Module):
    """TextModel: `model` (BertModel) and `projection_head_text`, in the authors' key layout under `text_model.`."""

    def __init__(self, config, proj_dim: int = 512):
        super().__init__()
        from transformers import BertModel

        self.model = BertModel(config)
        self.projection_head_text = _Projection(TEXT_HIDDEN, proj_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        output = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden = torch.stack([output.hidden_states[1], output.hidden_states[2], output.hidden_states[-1]])
        embed = hidden.permute(1, 0, 2, 3).mean(2).mean(1)  # every position, padding included, as the authors do
        return self.projection_head_text(embed)


def text_config(state: Mapping[str, torch.Tensor], arch_config: Mapping | None = None):
    """A BertConfig from the checkpoint's shapes (vocabulary, width, depth, positions, token types, intermediate);
    what shapes cannot say (heads, activation, LayerNorm eps) from `arch_config` or Bio_ClinicalBERT's config.json."""
    from transformers import BertConfig

    prefix = "text_model.model."
    try:
        words = state[prefix + "embeddings.word_embeddings.weight"]
        positions = state[prefix + "embeddings.position_embeddings.weight"]
        types = state[prefix + "embeddings.token_type_embeddings.weight"]
        intermediate = state[prefix + "encoder.layer.0.intermediate.dense.weight"]
    except KeyError as err:
        raise EncoderError(f"checkpoint lacks text key {err.args[0]!r}: is this a DLILP VLMModel checkpoint "
                           f"(learning_criteria clip/unicl/dlilp)?") from None
    layers = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"encoder\.layer\.(\d+)\.", k))}
    settings = dict(BIO_CLINICAL_BERT, vocab_size=words.shape[0], hidden_size=words.shape[1],
                    max_position_embeddings=positions.shape[0], type_vocab_size=types.shape[0],
                    num_hidden_layers=max(layers) + 1, intermediate_size=intermediate.shape[0])
    settings.update({k: v for k, v in (arch_config or {}).items() if k != "layout"})
    if settings["hidden_size"] != TEXT_HIDDEN:
        raise EncoderError(f"text tower width {settings['hidden_size']}, but the authors' projection is "
                           f"Linear({TEXT_HIDDEN}, 512): not a DLILP Bio_ClinicalBERT checkpoint")
    config = BertConfig(**settings)
    config._attn_implementation = "eager"  # the attention of the transformers release the authors used
    return config


def text_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The `text_model.*` tensors without the prefix, less the stale position_ids buffer (load_from_pretrained)."""
    return {k[len("text_model."):]: v for k, v in state.items()
            if k.startswith("text_model.") and k not in STALE_TEXT_KEYS}


def load_text_tower(state: Mapping[str, torch.Tensor], arch_config: Mapping | None = None,
                    what: str = "checkpoint") -> TextTower:
    """The text tower from a state dict in the authors' layout, strictly: every `text_model.*` key is a tensor of the
    tower and every tensor of the tower is in the checkpoint (else an error naming the keys)."""
    tower_state = text_state(state)
    proj = tower_state.get("projection_head_text.projection.weight")
    if proj is None:
        raise EncoderError(f"{what}: missing text key 'text_model.projection_head_text.projection.weight'")
    tower = TextTower(text_config(state, arch_config), proj_dim=proj.shape[0])
    expected = set(tower.state_dict())
    missing = sorted(expected - set(tower_state))
    unexpected = sorted(set(tower_state) - expected)
    if missing or unexpected:
        raise EncoderError(f"{what}: the text tower does not match the authors' TextModel: missing "
                           f"{['text_model.' + k for k in missing[:5]]} ({len(missing)}), unexpected "
                           f"{['text_model.' + k for k in unexpected[:5]]} ({len(unexpected)}); is this a DLILP "
                           f"VLMModel checkpoint in its native layout?")
    tower.load_state_dict(tower_state, strict=True)
    return tower.eval()


@torch.no_grad()
def text_prototypes(tower: TextTower, tokenizer, prompts: Sequence[Sequence[str]]) -> torch.Tensor:
    """compute_text_embeddings: per class, its prompts through the tower in one batch, mean of the L2-normalised
    embeddings (not re-normalised); one row per class."""
    rows = []
    for class_prompts_ in prompts:
        tokens = tokenize(tokenizer, class_prompts_)
        rows.append(tower(tokens["input_ids"], tokens["attention_mask"]).mean(0).unsqueeze(0))
    return torch.cat(rows)


def label_prototypes(class_prototypes: torch.Tensor, class_names: Sequence[str],
                     data: Mapping | None = None) -> torch.Tensor:
    """select_class_prototypes: per class, its alias rows of `class_prototypes` (matched lower-cased against
    CATEGORIES), their mean, L2-normalised."""
    data = data or prompt_data()
    categories = data["prototype_categories"]
    if class_prototypes.shape[0] != len(categories):
        raise EncoderError(f"class_prototypes has {class_prototypes.shape[0]} rows, the authors' CATEGORIES "
                           f"{len(categories)}: not a DLILP unimodal/dlilp checkpoint")
    rows = []
    for name in class_names:
        members = []
        for alias in data["prototype_aliases"].get(name, [name]):
            index = [i for i, c in enumerate(categories) if alias.lower() == c]
            if len(index) != 1:
                raise RegistryError(f"class {name!r} (as {alias!r}) is not one of the authors' CATEGORIES "
                                    f"({PROMPTS_PATH}: prototype_categories); the authors' code fails here too")
            members.append(class_prototypes[index[0]].unsqueeze(0))
        proto = torch.cat(members).mean(0).unsqueeze(0)
        rows.append(proto / proto.norm(dim=-1, keepdim=True))
    return torch.cat(rows)


# ---------------------------------------------------------------- heads and scores
def uses_label_head(criterion: str, experiment: str, swap: bool = True) -> bool:
    """Whether zero-shot goes through select_class_prototypes: a unimodal model, or DLILP's swap on every
    experiment whose name lacks "new" (main_transferability.py L75-80); `swap=False` keeps DLILP's text head."""
    if criterion not in CRITERIA:
        raise RegistryError(f"unknown DLILP learning criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    return criterion == "unimodal" or (swap and criterion == "dlilp" and "new" not in experiment)


def _expected_keys(criterion: str) -> set[str]:
    keys = {"logit_scale", "vision_model.projection_head_vision.projection.weight"}
    if criterion in ("unimodal", "dlilp"):
        keys.add("class_prototypes")
    if criterion == "dlilp":
        keys |= {"logit_scale_head2", "vision_model.projection_head2.projection.weight"}
    return keys


@dataclass
class ZeroShotHead:
    """What zero-shot needs besides the pooled image feature: the image projection (512x2048), one prototype row per
    class, the raw logit_scale parameter, and which head produced them ("text" or "label")."""

    image_projection: torch.Tensor
    prototypes: torch.Tensor
    logit_scale: torch.Tensor
    head: str


def zero_shot_head(state: Mapping[str, torch.Tensor], class_names: Sequence[str], *, criterion: str,
                   experiment: str, prompt_set: str = "names", tokenizer=None, rng: random.Random | None = None,
                   arch_config: Mapping | None = None, what: str = "checkpoint", swap: bool = True) -> ZeroShotHead:
    """The prototypes, scale and image projection for `class_names` from a VLMModel state dict (native layout).
    Every key is accounted for: the backbone (vision_model.model.*, used by the embed step), the text tower (strict)
    when the criterion has one, and the criterion's heads; anything else is an error, as the authors' strict load."""
    label = uses_label_head(criterion, experiment, swap)
    expected = _expected_keys(criterion)
    missing = sorted(expected - set(state))
    surplus = sorted(k for k in state if k not in expected and not k.startswith(VISION_BACKBONE)
                     and not (criterion != "unimodal" and k.startswith("text_model.")))
    if missing or surplus:
        raise EncoderError(f"{what}: keys do not match a DLILP '{criterion}' VLMModel: missing {missing}, unexpected "
                           f"{surplus[:5]} ({len(surplus)}); check the model's learning criterion in the registry")
    if label:
        return ZeroShotHead(
            image_projection=state["vision_model.projection_head2.projection.weight" if criterion == "dlilp"
                                   else "vision_model.projection_head_vision.projection.weight"].float(),
            prototypes=label_prototypes(state["class_prototypes"].float(), class_names),
            logit_scale=state["logit_scale_head2" if criterion == "dlilp" else "logit_scale"].float(),
            head="label")
    if tokenizer is None:
        raise ValueError("a text-head zero-shot needs the Bio_ClinicalBERT tokenizer (load_tokenizer())")
    # DLILP on a "new"-class experiment keeps the text head; its label-head tensors then go unused
    tower = load_text_tower({k: v.float() for k, v in state.items() if k.startswith("text_model.")}, arch_config,
                            what)
    prompts = class_prompts(prompt_set, class_names, rng)
    return ZeroShotHead(image_projection=state["vision_model.projection_head_vision.projection.weight"].float(),
                        prototypes=text_prototypes(tower, tokenizer, prompts),
                        logit_scale=state["logit_scale"].float(), head="text")


@torch.no_grad()
def zero_shot_scores(pooled: np.ndarray, head: ZeroShotHead) -> np.ndarray:
    """VisionModel (projection + L2) on the pooled features, then ZeroShot.predict's score: x @ T.T * exp(scale)."""
    x = torch.as_tensor(np.asarray(pooled, dtype=np.float32))
    x = x @ head.image_projection.T
    x = x / x.norm(dim=-1, keepdim=True)
    return (x @ head.prototypes.T * head.logit_scale.exp()).numpy()


def run_zero_shot(features: np.ndarray, labels: np.ndarray, sample_ids: Sequence[str],
                  state: Mapping[str, torch.Tensor], class_names: Sequence[str], *, criterion: str, experiment: str,
                  prompt_set: str = "names", tokenizer=None, fold: int = 0, shots_train: str | int = 16,
                  balance: bool = True, subset: str = "test", arch_config: Mapping | None = None,
                  what: str = "checkpoint", swap: bool = True) -> dict:
    """One fold of the protocol on a medprobe embedding file's rows (pooled features, labels in `class_names` order,
    sample ids "train/..."/"test/..." as transfer.subsets reads them): scores of the `subset` rows ("test": the
    external test set; "pool": the --experiment partition, as zeroshot.txt's DLILP lines do) and transfer.fold_metrics
    (ACA etc.). The ensemble's generator is the state after the fold's split draw on the pool."""
    parts = transfer.subsets(sample_ids)
    if subset == "test":
        if parts.test is None:
            raise EncoderError(f"{what}: the dataset has no 'test/...' rows; the zero-shot protocol scores the "
                               f"study's external test set (covid_test_*): use the dataset's DLILP adapter")
        rows = parts.test
    elif subset == "pool":
        rows = parts.pool
    else:
        raise ValueError(f"subset must be 'test' or 'pool', not {subset!r}")
    labels = np.asarray(labels)
    rng = None
    if prompt_set == "ensemble":
        rng = rng_after_split([int(v) for v in labels[parts.pool]], fold, shots_train=shots_train, balance=balance)
    head = zero_shot_head(state, class_names, criterion=criterion, experiment=experiment, prompt_set=prompt_set,
                          tokenizer=tokenizer, rng=rng, arch_config=arch_config, what=what, swap=swap)
    scores = zero_shot_scores(np.asarray(features)[rows], head)
    metrics = transfer.fold_metrics(labels[rows], scores)
    log.info("%s zero-shot (%s head, %s prompts): ACA %.3f on %d images", criterion, head.head,
             prompt_set if head.head == "text" else "no", metrics["aca"], len(rows))
    return {"scores": scores, "rows": rows, "metrics": metrics, "head": head.head, "n_eval": len(rows)}


# ---------------------------------------------------------------- the workflow's rule (Table 3)
# VLMModel.load_from_pretrained's renames for a release in another layout ("medclip" in the file name: MedCLIP 0.0.3's
# MedCLIPModel state dict, loaded strictly after these two renames)
KEY_MAPS = {
    "medclip": {"text_model.projection_head.weight": "text_model.projection_head_text.projection.weight",
                "vision_model.model.fc.weight": "vision_model.projection_head_vision.projection.weight"},
}
# the study's experiment names (main_transferability.py --experiment) of the medprobe datasets: the name decides
# DLILP's head swap ("new" keeps the text head); another dataset is its own experiment
EXPERIMENTS = {"covid_2class": "covid_train_2class", "covid_4class": "covid_train_4class"}


def native_state(state: Mapping[str, torch.Tensor], key_map: str | None, what: str) -> dict[str, torch.Tensor]:
    """The checkpoint in VLMModel's key layout: unchanged for the authors' own checkpoints, renamed as
    load_from_pretrained renames it for a known foreign release (KEY_MAPS)."""
    if not key_map:
        return dict(state)
    if key_map not in KEY_MAPS:
        raise RegistryError(f"{what}: unknown dlilp_zero_shot.key_map {key_map!r}; known: {', '.join(KEY_MAPS)}")
    renames = KEY_MAPS[key_map]
    absent = [k for k in renames if k not in state]
    if absent:
        raise EncoderError(f"{what}: lacks {absent}, which the authors' loader renames for a {key_map} checkpoint: "
                           f"is local_weights the release's own state dict?")
    return {renames.get(k, k): v for k, v in state.items()}


def run_dlilp_zeroshot(embeddings_path: str | Path, weights_json: str | Path, out_path: str | Path, *,
                       dataset_id: str, model_id: str, model_spec: Mapping, params: Mapping):
    """The `dlilp_zeroshot` rule: every configured prompt set on one (dataset, model), fold 0 as zeroshot.txt runs it;
    one row per (prompt set, metric). A label-head model (unimodal; DLILP under the swap) scores the same for every
    prompt set: its rows say head "label"."""
    import pandas as pd

    from medprobe import files
    from medprobe.models.checkpoints import read_state_dict
    from medprobe.store import read_embeddings
    from medprobe.weights import read_record, record_paths

    what = f"model '{model_id}'"
    settings = model_spec.get("dlilp_zero_shot")
    if not settings:
        raise RegistryError(f"{what} has no dlilp_zero_shot entry in the model registry: the study's zero-shot "
                            f"protocol needs one of its VLMModel checkpoints (criteria {', '.join(CRITERIA)}); drop "
                            f"it from the config's models or from transfer_zeroshot")
    criterion = settings["criterion"]
    emb = read_embeddings(embeddings_path)
    point = emb.attrs.get("feature_point")
    if point != "pooled":
        raise EncoderError(f"{what}: {embeddings_path} holds feature point {point!r}; the study's zero-shot projects "
                           f"the pooled backbone feature: drop feature_points.{model_id} from the config")
    if not np.isfinite(emb.features).all():
        raise EncoderError(f"{what}: {embeddings_path} has rows that failed to embed (NaN); the study scores every "
                           f"image: fix the images its embed log lists, then rerun the embed rule for it")
    paths = record_paths(read_record(weights_json, model_id))
    state = native_state(read_state_dict(paths["checkpoint"]), settings.get("key_map"),
                         f"{what} ({paths['checkpoint']})")
    experiment = EXPERIMENTS.get(dataset_id, dataset_id)
    swap = bool(params.get("dlilp_head_swap", True))
    tokenizer = None
    if not uses_label_head(criterion, experiment, swap):
        if "text_vocab" not in paths:
            raise EncoderError(f"{what}: zero-shot with the text head needs Bio_ClinicalBERT's config.json and "
                               f"vocab.txt, which {weights_json} does not list; fetch them: snakemake {weights_json} "
                               f"--forcerun fetch_weights --cores 1")
        tokenizer = load_tokenizer(Path(paths["text_vocab"]).parent)
    arch_config = None
    if "text_config" in paths:  # what the shapes cannot say, from Bio_ClinicalBERT's config.json (AutoModel reads it)
        import json

        hub = json.loads(Path(paths["text_config"]).read_text())
        arch_config = {k: hub[k] for k in BIO_CLINICAL_BERT if k in hub}
    rows = []
    for prompt_set in params["prompt_sets"]:
        result = run_zero_shot(emb.features, np.asarray(emb.labels), list(emb.sample_id), state, emb.class_names,
                               criterion=criterion, experiment=experiment, prompt_set=prompt_set, tokenizer=tokenizer,
                               fold=0, shots_train=params.get("shots_train", 16), balance=params.get("balance", True),
                               subset=params.get("test_set", "test"), arch_config=arch_config, what=what,
                               swap=swap)
        for metric, value in result["metrics"].items():
            rows.append(dict(dataset=dataset_id, model=model_id, experiment=experiment, criterion=criterion,
                             prompt_set=prompt_set, head=result["head"], test_set=params.get("test_set", "test"),
                             fold=0, n_eval=result["n_eval"], metric=metric, value=value))
    table = pd.DataFrame(rows, columns=transfer.ZEROSHOT_COLUMNS)
    files.write_tsv(out_path, table)
    return table
