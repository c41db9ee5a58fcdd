"""Words written onto images: the typographic probe's stimulus, rendered one documented way.

A word is drawn with a real TrueType font (by default DejaVu Sans Bold, which ships with matplotlib), its cap height
`size` times the image's short side, in a corner (`position`) at `margin` times the short side from both edges, in
`colour` at `opacity` (alpha-composited over the image). The defaults follow ultrasound annotations: white uppercase
in the top-left corner. Every image of a probe is rendered with every word of a set, so the image content says
nothing about the word.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont

from medprobe.errors import RegistryError

POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "center")
DEFAULT_WORD_SETS = {"breast_axilla": ["BREAST", "AXILLA"], "left_right": ["LEFT", "RIGHT"]}
CLASS_NAMES_SET = "class_names"  # the dataset's own class names, upper-cased, are a word set of their own


def default_font() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"


@dataclass(frozen=True)
class OverlayStyle:
    font: str = ""                          # a .ttf/.otf path; empty: DejaVu Sans Bold from matplotlib
    size: float = 0.08                      # cap height as a fraction of the image's short side
    position: str = "top-left"
    margin: float = 0.04                    # distance from the edges, as a fraction of the short side
    colour: tuple[int, int, int] = (255, 255, 255)
    opacity: float = 1.0

    @property
    def font_path(self) -> Path:
        return Path(self.font) if self.font else default_font()

    def as_dict(self) -> dict[str, Any]:
        return {"font": str(self.font_path.name), "size": self.size, "position": self.position,
                "margin": self.margin, "colour": list(self.colour), "opacity": self.opacity}


@functools.lru_cache(maxsize=64)
def _font(path: str, pixels: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, pixels)


def font_pixels(style: OverlayStyle, width: int, height: int) -> int:
    """The font size in pixels that gives the style's cap height on an image of this size (at least 6 px)."""
    cap = max(1.0, style.size * min(width, height))
    font = _font(str(style.font_path), 100)
    left, top, right, bottom = font.getbbox("H")
    return max(6, round(cap * 100 / max(1, bottom - top)))


def text_box(word: str, style: OverlayStyle, width: int, height: int) -> tuple[int, int, int, int]:
    """Where the word's ink lands on a width x height image: (left, top, right, bottom)."""
    font = _font(str(style.font_path), font_pixels(style, width, height))
    left, top, right, bottom = font.getbbox(word)
    text_w, text_h = right - left, bottom - top
    margin = round(style.margin * min(width, height))
    x = {"left": margin, "right": width - margin - text_w}
    y = {"top": margin, "bottom": height - margin - text_h}
    if style.position == "center":
        x0, y0 = (width - text_w) // 2, (height - text_h) // 2
    else:
        vertical, horizontal = style.position.split("-")
        x0, y0 = x[horizontal], y[vertical]
    return x0, y0, x0 + text_w, y0 + text_h


def render(image: Image.Image, word: str, style: OverlayStyle) -> Image.Image:
    """A copy of the RGB image with the word written on it."""
    width, height = image.size
    font = _font(str(style.font_path), font_pixels(style, width, height))
    left, top, _, _ = font.getbbox(word)
    x0, y0, _, _ = text_box(word, style, width, height)
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    alpha = round(255 * style.opacity)
    ImageDraw.Draw(layer).text((x0 - left, y0 - top), word, font=font, fill=(*style.colour, alpha))
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


@dataclass
class OverlayPlan:
    style: OverlayStyle
    word_sets: dict[str, list[str]] = field(default_factory=dict)
    set_sizes: dict[str, float] = field(default_factory=dict)   # a set written smaller than style.size (class names)

    def words(self) -> list[tuple[str, str]]:
        """(set, word) pairs in a fixed order."""
        return [(name, word) for name, words in self.word_sets.items() for word in words]

    def style_of(self, word_set: str) -> OverlayStyle:
        size = self.set_sizes.get(word_set, self.style.size)
        return self.style if size == self.style.size else replace(self.style, size=size)


def overlay_plan(bias: Mapping[str, Any], class_names: Sequence[str], *, source: str = "config") -> OverlayPlan:
    """The word sets and style of a config's `bias:` block, checked; errors name the key."""
    style_keys = {k: bias[k] for k in ("font", "size", "position", "margin", "opacity") if k in bias}
    if "colour" in bias:
        style_keys["colour"] = tuple(int(c) for c in bias["colour"])
    style = OverlayStyle(**style_keys)
    font = style.font_path
    if not font.is_file():
        raise RegistryError(f"{source}: bias.font {style.font!r}: no such font file. Give the path of a .ttf or .otf "
                            f"file, or leave bias.font empty for DejaVu Sans Bold (shipped with matplotlib).")
    try:
        _font(str(font), 20)
    except OSError as err:
        raise RegistryError(f"{source}: bias.font {str(font)!r} is not a font FreeType can read ({err}); give a "
                            f".ttf or .otf file") from err
    if style.position not in POSITIONS:
        raise RegistryError(f"{source}: bias.position {style.position!r}: choose one of {', '.join(POSITIONS)}")
    word_sets = {}
    for name, words in (bias.get("word_sets") or DEFAULT_WORD_SETS).items():
        if name == CLASS_NAMES_SET:
            continue
        words = [str(w) for w in (words or [])]
        if len(words) < 2 or any(not w.strip() for w in words):
            raise RegistryError(f"{source}: bias.word_sets.{name} {words!r}: a word set needs at least two non-empty "
                                f"words (the probes tell them apart)")
        if len(set(words)) != len(words):
            raise RegistryError(f"{source}: bias.word_sets.{name} {words!r}: a word appears twice")
        word_sets[name] = words
    if bias.get("class_name_words", True):
        word_sets[CLASS_NAMES_SET] = [str(c).replace("_", " ").upper() for c in class_names]
    if not word_sets:
        raise RegistryError(f"{source}: bias.word_sets is empty and bias.class_name_words is false: nothing to write")
    return OverlayPlan(style=style, word_sets=word_sets)


def _hardest(sizes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The images a word is least likely to fit: the narrowest for their short side, and the smallest."""
    distinct = set(sizes)
    narrow = sorted(distinct, key=lambda s: (s[0] / min(s), min(s)))[:8]
    small = sorted(distinct, key=lambda s: (min(s), s))[:8]
    return list(dict.fromkeys(narrow + small))


def fits(word: str, style: OverlayStyle, sizes: Sequence[tuple[int, int]]) -> tuple[bool, tuple[int, int], tuple]:
    for width, height in _hardest(sizes):
        box = text_box(word, style, width, height)
        if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
            return False, (width, height), box
    return True, (0, 0), ()


def check_fits(plan: OverlayPlan, sizes: Sequence[tuple[int, int]], *, source: str = "config",
               dataset_id: str = "") -> OverlayPlan:
    """Every word must fit inside every image. A configured word set that does not fit stops the job; the dataset's
    own class names (long ones: MENINGIOMA TUMOR) are written smaller where they would not fit, and the size used
    is recorded. Returns the plan with the sizes used per set."""
    set_sizes = {}
    for name, words in plan.word_sets.items():
        style = plan.style
        if name == CLASS_NAMES_SET:
            while style.size > 0.01 and not all(fits(w, style, sizes)[0] for w in words):
                style = replace(style, size=round(style.size - 0.005, 4))
        for word in words:
            ok, (width, height), box = fits(word, style, sizes)
            if not ok:
                raise RegistryError(
                    f"{source}: bias.word_sets.{name}: the word {word!r} does not fit a {width}x{height} image of "
                    f"dataset '{dataset_id}' at bias.size {style.size} (it needs {box[2] - box[0]} x "
                    f"{box[3] - box[1]} px plus the margin). Lower bias.size, shorten the word, or drop it from the "
                    f"set.")
        set_sizes[name] = style.size
    return OverlayPlan(style=plan.style, word_sets=plan.word_sets, set_sizes=set_sizes)


def probe_images(manifest: "pd.DataFrame", split: "pd.DataFrame", n_images: int, seed: int) -> "pd.DataFrame":
    """The hold-out images of the split (a seeded subsample of at most n_images, in manifest order)."""
    import numpy as np

    holdout = set(split.loc[split["partition"] == "holdout", "sample_id"])
    chosen = manifest[manifest["sample_id"].isin(holdout)]
    if len(chosen) > n_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(chosen), size=n_images, replace=False))
        chosen = chosen.iloc[keep]
    return chosen.reset_index(drop=True)


def overlay_table(images: "pd.DataFrame", plan: OverlayPlan) -> "pd.DataFrame":
    """One row per (image, word): the manifest's columns plus image_id, word_set, word; image-major order."""
    import pandas as pd

    rows = []
    for image in images.itertuples(index=False):
        for word_set, word in plan.words():
            rows.append({**image._asdict(), "image_id": image.sample_id, "word_set": word_set, "word": word,
                         "sample_id": f"{image.sample_id}|{word_set}|{word}"})
    return pd.DataFrame(rows)


def probe_plan(manifest: "pd.DataFrame", split: "pd.DataFrame", bias: Mapping[str, Any], class_names: Sequence[str],
               *, seed: int = 0, dataset_id: str = "") -> tuple["pd.DataFrame", OverlayPlan]:
    """The typographic probe's images and its checked plan (every word fits every image, sizes per set)."""
    plan = overlay_plan(bias, class_names)
    images = probe_images(manifest, split, int(bias.get("n_images", 500)), seed)
    return images, check_fits(plan, list(zip(images["width"], images["height"])), dataset_id=dataset_id)
