from pathlib import Path

import pytest
import yaml

from medprobe.errors import RegistryError
from medprobe.registry import (check_ids, dataset_root, load_datasets, load_models, load_workflow_registries,
                               load_yaml, validate)

PAPER_DATASETS = ["brainmr", "sarscov2ct", "pneumoniamnist", "busi", "breakhis", "hicervix", "deepdrid", "isic2019"]


def shipped_configs(repo):
    return sorted((repo / "config").glob("*.yaml"))


def test_every_shipped_config_validates_and_resolves(repo):
    for path in shipped_configs(repo):
        if path.name in ("models.yaml", "datasets.yaml"):
            continue
        config = load_yaml(path)
        validate(config, "config", str(path))
        models, datasets = load_workflow_registries(config, repo, source=str(path))
        assert set(config["models"]) <= set(models)
        assert set(config["datasets"]) <= set(datasets)


def test_paper_config_lists_16_models_and_8_datasets(repo):
    config = load_yaml(repo / "config" / "config.yaml")
    assert len(config["models"]) == 16
    assert config["datasets"] == PAPER_DATASETS
    assert config["umap"]["n_neighbors"] == [3, 5, 10, 15, 25, 50, 100, 200, 500, 1000]
    assert config["umap"]["min_dist"] == [0.1, 0.25, 0.5, 0.75, 1.0]
    assert config["split"]["holdout_fraction"] == 0.2 and config["split"]["n_folds"] == 5
    assert config["probe"]["C_numerator"] == 100


def _key_paths(obj, prefix=()):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield prefix + (key,)
            yield from _key_paths(value, prefix + (key,))


def test_demo_default_never_leaks_into_the_paper_config(repo):
    """Snakemake merges --configfile over the Snakefile's configfile: config.yaml must set every key demo sets."""
    demo = set(_key_paths(load_yaml(repo / "config" / "demo.yaml")))
    paper = set(_key_paths(load_yaml(repo / "config" / "config.yaml")))
    assert demo <= paper, f"keys only in demo.yaml: {sorted(demo - paper)}"


def test_model_registry_facts(repo):
    models = load_models(repo / "config" / "models.yaml")
    assert models["pixels"]["dim"] == 1024
    assert models["uni"]["dim"] == 1024 and models["uni"]["gated"] and models["conch"]["gated"]
    assert models["conch"]["preprocessing"]["size"] == 448
    assert models["flair"]["preprocessing"]["crop"] == "pad" and "mean" not in models["flair"]["preprocessing"]
    for model_id in ("llava", "llava_med", "llava_med_pp"):
        assert models[model_id]["arch"] == "openai/clip-vit-large-patch14-336"
        assert models[model_id]["preprocessing"]["crop_offset"] == "floor"  # CLIPImageProcessor's crop
    for model_id in ("llava", "llava_med"):
        assert set(models[model_id]["feature_points"]) == {"projector_mean", "tower_cls", "patch_mean"}
    s2 = models["llava_med_pp"]  # LLaVA-Tri: S2 at 336/672/1008 -> 3 x 1024-d tokens into the projector
    assert s2["arch_config"]["s2_scales"] == [336, 672, 1008] and s2["preprocessing"]["size"] == 1008
    assert s2["feature_points"]["patch_mean"]["dim"] == 3072 and "tower_cls" not in s2["feature_points"]
    for spec in models.values():
        assert spec["feature_point"] in spec.get("feature_points", {spec["feature_point"]: ""})


def test_dataset_registry_counts_add_up(repo):
    datasets = load_datasets(repo / "config" / "datasets.yaml")
    assert datasets["brainmr"]["expected"]["counts"] == {
        "glioma_tumor": 826, "meningioma_tumor": 822, "no_tumor": 395, "pituitary_tumor": 827}
    assert datasets["busi"]["expected"]["n"] == 780
    assert datasets["busi"]["exclude"] == ["*_mask*.png"]


def test_unknown_id_names_it_and_lists_valid_ones():
    with pytest.raises(RegistryError) as err:
        check_ids(["pixels", "resnet5O"], {"pixels": {}, "resnet50": {}}, "model", "my.yaml")
    assert "'resnet5O'" in str(err.value) and "pixels, resnet50" in str(err.value) and "my.yaml" in str(err.value)


def test_schema_violation_names_file_and_field(tmp_path, repo):
    models = load_yaml(repo / "config" / "models.yaml")
    del models["pixels"]["dim"]
    models["vgg16"]["family"] = "caffe"
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(models))
    with pytest.raises(RegistryError) as err:
        load_models(path)
    text = str(err.value)
    assert str(path) in text and "pixels: 'dim' is a required property" in text and "vgg16/family" in text


def test_custom_datasets_merge_and_clash(repo):
    custom = {"mine": {"name": "Mine", "adapter": "imagefolder", "root": "/data/mine", "licence": "private",
                       "classes": ["a", "b"]}}
    merged = load_datasets(repo / "config" / "datasets.yaml", custom)
    assert "mine" in merged and "brainmr" in merged
    with pytest.raises(RegistryError, match="already exist"):
        load_datasets(repo / "config" / "datasets.yaml", {"busi": custom["mine"]})
    bad = {"mine": {**custom["mine"], "expected": {"n": 5, "counts": {"a": 2, "b": 2}}}}
    with pytest.raises(RegistryError, match="sum to 4"):
        load_datasets(repo / "config" / "datasets.yaml", bad)


def test_dataset_root_override():
    spec = {"root": "busi/Dataset_BUSI_with_GT"}
    assert dataset_root("busi", spec, "data") == Path("data/busi/Dataset_BUSI_with_GT")
    assert dataset_root("busi", spec, "data", {"busi": "/mnt/busi"}) == Path("/mnt/busi")


def umap_learn_refuses(n_neighbors: int, min_dist: float) -> bool:
    """umap-learn's own parameter check (UMAP._validate_parameters), the judge of what a UMAP setting may be."""
    import numpy as np
    import umap

    model = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine")
    model._raw_data, model._sparse_data, model._initial_alpha = np.zeros((20, 3)), False, model.learning_rate
    try:
        model._validate_parameters()
    except ValueError:
        return True
    return False


@pytest.mark.parametrize("n_neighbors,min_dist", [(2, 0.0), (1, 0.1), (15, 0.99), (15, 1.0), (15, 1.0001), (15, 4.0),
                                                  (15, -0.1), (1000, 0.5)])
def test_umap_grid_refused_exactly_where_umap_learn_refuses(n_neighbors, min_dist):
    from medprobe.umap_settings import settings_problems

    assert bool(settings_problems([n_neighbors], [min_dist])) == umap_learn_refuses(n_neighbors, min_dist)


def test_a_bad_config_value_names_the_file_that_holds_it(repo, tmp_path):
    from medprobe.registry import check_config

    base = yaml.safe_load((repo / "config" / "demo.yaml").read_text())
    override = tmp_path / "mine.yaml"
    override.write_text("umap:\n  min_dist: [0.1, 4]\n")
    config = {**base, "umap": {**base["umap"], "min_dist": [0.1, 4]}}
    files = [repo / "config" / "demo.yaml", override]
    with pytest.raises(RegistryError, match=rf"umap/min_dist: min_dist must be less than or equal to spread \(1.0\).*"
                                            rf"umap-learn refuses it \(set in {override}\)"):
        check_config(config, files)
    config = {**base, "probe": {**base["probe"], "tol": -1}}
    with pytest.raises(RegistryError, match=r"probe/tol: -1 is less than or equal to the minimum of 0 \(set in "
                                            r"--config on the command line\)"):
        check_config(config, files)
    check_config(base, files)
