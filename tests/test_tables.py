import numpy as np
import pandas as pd

from medprobe.tables import f1_metric, format_cell, paper_table, summarize, to_markdown

MODELS = {
    "clip": {"name": "CLIP", "group": "Non-medical", "backbone": "ViT-B/16"},
    "biomedclip": {"name": "BiomedCLIP", "group": "Medical", "backbone": "ViT-B/16"},
    "vgg": {"name": "VGG16", "group": "Non-medical", "backbone": "VGG16"},
}
DATASETS = {"brainmr": {"name": "BrainMR", "classes": ["a", "b", "c", "d"]},
            "breakhis": {"name": "BreakHis", "classes": ["benign", "malignant"]}}


def probes():
    rows = []
    for d, spec in DATASETS.items():
        for m_i, m in enumerate(MODELS):
            for fold in range(5):
                for metric in ("accuracy", "f1_macro", "f1_binary"):
                    if metric == "f1_binary" and len(spec["classes"]) != 2:
                        continue
                    value = 0.5 + 0.1 * m_i + 0.01 * fold + (0.2 if metric == "f1_binary" else 0)
                    rows.append(dict(dataset=d, model=m, fold=fold, eval="holdout", metric=metric, value=value,
                                     n_classes=len(spec["classes"])))
    return pd.DataFrame(rows)


def test_cell_format_is_the_posters():
    assert format_cell(0.9134, 0.0021) == "91 ± 0.2"
    assert format_cell(0.5, 0.0, 1, 2) == "50.0 ± 0.00"
    assert format_cell(float("nan"), 0.0) == "–"


def test_poster_f1_is_binary_on_two_classes_only():
    assert f1_metric(2) == "f1_binary" and f1_metric(4) == "f1_macro" and f1_metric(2, "macro") == "f1_macro"


def test_summary_and_table_values():
    summary = summarize(probes(), ddof=0)
    row = summary[(summary.dataset == "brainmr") & (summary.model == "vgg") & (summary.metric == "accuracy")].iloc[0]
    values = 0.5 + 0.2 + 0.01 * np.arange(5)
    assert row["mean"] == np.mean(values) and row["std"] == np.std(values) and row.n_folds == 5
    table = paper_table(summary, MODELS, DATASETS)
    assert table.model.tolist() == ["CLIP", "VGG16", "BiomedCLIP"]  # grouped by first appearance
    vgg = table[table.model == "VGG16"].iloc[0]
    assert vgg["BrainMR accuracy"] == format_cell(np.mean(values), np.std(values))
    # BreakHis F1 is the binary F1 (0.2 higher here), BrainMR F1 macro
    assert vgg["BreakHis F1"] == format_cell(np.mean(values) + 0.2, np.std(values))
    assert vgg["BrainMR F1"] == format_cell(np.mean(values), np.std(values))
    macro = paper_table(summary, MODELS, DATASETS, f1="macro")
    assert macro[macro.model == "VGG16"].iloc[0]["BreakHis F1"] == format_cell(np.mean(values), np.std(values))


def test_markdown_groups_rows_and_keeps_notes():
    table = paper_table(summarize(probes()), MODELS, DATASETS)
    text = to_markdown(table, ["a note"])
    lines = text.splitlines()
    assert lines[0].startswith("| group | model | BrainMR accuracy")
    assert lines[2].startswith("| Non-medical | CLIP") and lines[3].startswith("|  | VGG16")
    assert text.rstrip().endswith("- a note")


def test_notes_say_how_embeddings_were_made_and_which_weights():
    import medprobe
    from medprobe.tables import provenance_notes

    models = {"uni": {"name": "UNI"}, "resnet50": {"name": "ResNet50"}}
    records = [
        {"model_id": "uni", "files": {
            "checkpoint": {"path": "/c/models--MahmoodLab--UNI/snapshots/b55a5ec6cade/pytorch_model.bin",
                           "sha256": "1" * 64, "repo": "MahmoodLab/UNI", "revision": "b55a5ec6cade1a39edfe6534189a9b8"},
            "text_vocab": {"path": "/c/vocab.txt", "sha256": "2" * 64, "repo": "x/y", "revision": "f" * 40}}},
        {"model_id": "resnet50", "files": {"checkpoint": {
            "path": "/t/hub/checkpoints/resnet50-0676ba61.pth", "sha256": "0676ba61" + "0" * 56,
            "url": "https://download.pytorch.org/models/resnet50-0676ba61.pth"}}},
        {"model_id": "other", "files": {}}]
    exact = [{"model_id": "uni", "dataset_id": "brainmr", "extraction_mode": "exact",
              "medprobe_version": medprobe.__version__},
             {"model_id": "resnet50", "dataset_id": "brainmr", "extraction_mode": "exact",
              "medprobe_version": medprobe.__version__}]
    notes = provenance_notes(records, exact, models)
    assert notes[0] == f"medprobe {medprobe.__version__}."  # the embeddings record no other version
    assert notes[1].startswith("Embeddings: exact") and "all 2 files" in notes[1]
    assert "UNI: MahmoodLab/UNI@b55a5ec6cade" in notes[2] and "x/y" not in notes[2]  # text files are not the tower's
    assert "ResNet50: https://download.pytorch.org/models/resnet50-0676ba61.pth (sha256 0676ba610000)" in notes[2]
    fast = [exact[0], {**exact[1], "extraction_mode": "fast (bf16 autocast, channels_last)", "medprobe_version": "0.0.9"}]
    assert provenance_notes([], fast, models) == [
        f"medprobe {medprobe.__version__}; embeddings written by medprobe 0.0.9, {medprobe.__version__}.",
        "Embeddings: exact for UNI/brainmr; fast (bf16 autocast, channels_last) for ResNet50/brainmr."]
