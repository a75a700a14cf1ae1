"""Real images this machine can install: the glyphs of the fonts in Debian's ``texlive-fonts-extra``.

About a thousand OpenType and TrueType fonts from some ninety font packages, each drawing the 62
characters A-Z, a-z and 0-9. Type designers made them, so every class is a design people drew,
not a generator's draw. Two sets are built from them:

- ``fonts`` (retrieval): a class is a font. A query is one glyph; the right answers are the other
  characters of the same font. Telling a font from a near relative across characters is a
  fine-grained task (raw-pixel nearest neighbour finds the font for about 11% of the glyphs).
- ``fonts-cls`` (classification): a class is a character (62 classes), learned on the glyphs of the
  training fonts and tested on those of fonts never seen in training.

Fonts are split by **design group**, never one by one: a font package (``libertinus``, ``fira`` ...)
is one group, and packages that carry a near-copy of each other's fonts (the Computer Modern
descendants, the Times clones) are joined into one group, so that no design straddles train and
test. Fonts whose 62 renders are near-identical to another font's (the same outlines under two
names, optical sizes that differ by a hair at 32 px) are kept once. Each replicate's ``seed`` draws
the split of the groups (``test_fraction`` of the fonts go to test) and, with ``per_class``, the
characters each font shows; the images themselves do not change with the seed.

The glyphs are rendered once, with Pillow's FreeType, into a cached array (``cache_dir``, by default
``~/.cache/hmat-bench``, or ``$HMAT_BENCH_DATA_CACHE``): each glyph is cropped to its ink, scaled by one
factor per font (so that the font's largest glyph fills ``ink`` pixels and relative sizes and
proportions stay the font's), centred in a ``size`` x ``size`` grey image, white ink on black. The
cache is keyed by the package version, the font files (names and sizes), Pillow's and FreeType's
versions and this module's ``RENDER_VERSION``: any change renders anew. Fonts that lack one of the 62
characters are left out (symbol and icon fonts, Greek- or Cyrillic-only fonts); a font that fails to
render is skipped and counted in the data line, and more than ``MAX_FAILED`` of them is an error.
"""

from __future__ import annotations

import hashlib
import os
import string
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import PIL
import torch
from fontTools.ttLib import TTFont
from PIL import Image, ImageFont, features

from retrieval.data.base import DatasetNotFoundError, TensorImageDataset, class_split_mask
from retrieval.data.classification import make_split
from retrieval.data.registry import register_dataset
from retrieval.data.transforms import tensor_transform
from retrieval.utils.atomic import atomic_write_via
from retrieval.utils.cache_files import check_archive, load_checked, say

CHARACTERS = string.ascii_uppercase + string.ascii_lowercase + string.digits
PACKAGE = "texlive-fonts-extra"
DEFAULT_ROOT = Path("/usr/share/texlive/texmf-dist/fonts")
"""Where Debian's TeX Live packages put their fonts (``<root>/opentype/public/<package>/...``)."""
INSTALL = f"apt-get install {PACKAGE}"
LAYOUT = ("opentype/public", "*.otf"), ("truetype/public", "*.ttf")
RENDER_VERSION = 2  # 2: packages joined through their duplicates too (a table cached under 1 grouped 76 designs, not 73)
RENDER_POINTS = 64      # glyphs are drawn at this size, then scaled down
DUPLICATE = 1e-3        # mean squared pixel difference (0-1 scale) under which two fonts are one design
SAME_DESIGN = 3e-3      # ... under which two packages are joined into one split group
MAX_FAILED = 0.05       # share of the fonts with the 62 characters that may fail to render
FONT_MEAN, FONT_STD = (0.091,) * 3, (0.264,) * 3   # of the rendered glyphs at 32 px (white ink on black)


class FontRenderError(ValueError):
    """A font that holds the characters but cannot be drawn (a damaged file, an unsupported format)."""


@dataclass(frozen=True)
class GlyphTable:
    """Every usable font's glyphs: ``images`` (fonts, 62, size, size) uint8; per font its ``names``
    (path under the root), ``packages`` and split ``groups``; and counts of what was left out."""

    images: np.ndarray
    names: np.ndarray
    packages: np.ndarray
    groups: np.ndarray
    without_characters: int
    failed: int
    duplicates: int

    def note(self) -> str:
        """One line on what the table holds and what was left out."""
        return (f"{len(self.names)} fonts in {len(np.unique(self.groups))} design groups "
                f"({len(np.unique(self.packages))} packages); left out: {self.without_characters} without the 62 "
                f"characters, {self.duplicates} near-duplicates, {self.failed} that failed to render")


# ------------------------------------------------------------------------------------------- finding

def font_files(root) -> list[tuple[str, Path]]:
    """(package, path) of every OpenType and TrueType font under ``root`` in TeX Live's layout,
    sorted by path; a one-line ``DatasetNotFoundError`` naming the install command when there is none."""
    root = Path(root)
    found = []
    for folder, pattern in LAYOUT:
        base = root / folder
        if base.is_dir():
            found += [(p.relative_to(base).parts[0], p) for p in base.glob(f"*/**/{pattern}")]
    if not found:
        raise DatasetNotFoundError(
            f"fonts: no fonts under {root} (expected {root}/opentype/public/<package>/*.otf or "
            f"{root}/truetype/public/<package>/*.ttf); install them with `{INSTALL}`, or pass --data-root a "
            f"folder in that layout")
    return sorted(found, key=lambda item: str(item[1]))


def package_version(root) -> str:
    """The installed version of ``texlive-fonts-extra`` when ``root`` is where it installs, else ''."""
    if Path(root).resolve() != DEFAULT_ROOT.resolve():
        return ""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def cache_key(root, files: list[tuple[str, Path]], size: int, ink: int) -> str:
    """A digest of everything the rendered table depends on (see the module's docstring)."""
    h = hashlib.sha256()
    for part in (RENDER_VERSION, size, ink, package_version(root), PIL.__version__, features.version("freetype2")):
        h.update(f"{part}\n".encode())
    root = Path(root)
    for package, path in files:
        h.update(f"{package} {path.relative_to(root)} {path.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------- drawing

def has_characters(path) -> bool:
    """Whether the font maps every one of the 62 characters (its best Unicode cmap)."""
    try:
        with TTFont(str(path), lazy=True, fontNumber=0) as font:
            cmap = font.getBestCmap() or {}
    except Exception:  # an unreadable file cannot be drawn either: render_font says why
        return True
    return all(ord(c) in cmap for c in CHARACTERS)


def render_font(path, size: int = 32, ink: int = 28) -> np.ndarray:
    """(62, size, size) uint8: the font's glyphs of ``CHARACTERS``, each cropped to its ink, scaled by one
    factor for the whole font so that its largest glyph spans ``ink`` pixels, and centred.
    ``FontRenderError`` when the font cannot be drawn or draws a character as nothing."""
    if not 0 < ink <= size:
        raise ValueError(f"ink must lie in 1..size ({size}), got {ink}")
    try:
        font = ImageFont.truetype(str(path), RENDER_POINTS)
        glyphs = []
        for c in CHARACTERS:
            mask = font.getmask(c)
            image = Image.frombytes("L", mask.size, bytes(mask)) if mask.size[0] * mask.size[1] else None
            box = image.getbbox() if image is not None else None
            if box is None:
                raise FontRenderError(f"{path}: the character {c!r} draws nothing")
            glyphs.append(image.crop(box))
    except FontRenderError:
        raise
    except Exception as exc:
        raise FontRenderError(f"{path}: {type(exc).__name__}: {exc}") from exc
    scale = ink / max(max(g.size) for g in glyphs)
    out = np.zeros((len(CHARACTERS), size, size), dtype=np.uint8)
    for i, g in enumerate(glyphs):
        w, h = max(1, round(g.size[0] * scale)), max(1, round(g.size[1] * scale))
        canvas = Image.new("L", (size, size))
        canvas.paste(g.resize((w, h), Image.BOX), ((size - w) // 2, (size - h) // 2))
        out[i] = np.asarray(canvas)
    return out


def _mean_squared_differences(images: np.ndarray) -> np.ndarray:
    """(F, F) mean squared pixel difference (0-1 scale) between the fonts' glyph sets."""
    flat = images.reshape(len(images), -1).astype(np.float32) / 255
    sq = (flat ** 2).sum(1)
    d = np.maximum(sq[:, None] + sq[None, :] - 2 * flat @ flat.T, 0) / flat.shape[1]
    np.fill_diagonal(d, np.inf)
    return d


def _components(n: int, pairs) -> np.ndarray:
    """Connected components of ``n`` nodes under the edges ``pairs``: each node's smallest member."""
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)])


def build_table(root, size: int = 32, ink: int = 28, log=None) -> GlyphTable:
    """Render every font under ``root``, drop the near-duplicates and form the split groups."""
    root = Path(root)
    files = font_files(root)
    images, names, packages = [], [], []
    without, failed = 0, []
    for package, path in files:
        if not has_characters(path):
            without += 1
            continue
        try:
            images.append(render_font(path, size, ink))
        except FontRenderError as exc:
            failed.append(str(exc))
            continue
        names.append(str(path.relative_to(root)))
        packages.append(package)
    candidates = len(images) + len(failed)
    if failed and len(failed) > MAX_FAILED * candidates:
        raise FontRenderError(f"fonts: {len(failed)} of {candidates} fonts under {root} failed to render (more than "
                              f"{MAX_FAILED:.0%}; a damaged install?), e.g. {failed[0]}; reinstall with "
                              f"`apt-get install --reinstall {PACKAGE}`")
    if len(images) < 4:
        raise DatasetNotFoundError(f"fonts: only {len(images)} fonts under {root} draw the 62 characters A-Z, a-z, "
                                   f"0-9 (expected hundreds); install them with `{INSTALL}`")
    stack = np.stack(images)
    d = _mean_squared_differences(stack)
    # packages that share a design (a duplicate included) form one group; then each duplicate set keeps its first
    package_ids = np.unique(packages, return_inverse=True)[1]
    links = [(package_ids[a], package_ids[b]) for a, b in zip(*np.nonzero(np.triu(d < SAME_DESIGN, 1)))]
    groups = _components(package_ids.max() + 1, links)[package_ids]
    keep = _components(len(stack), zip(*np.nonzero(np.triu(d < DUPLICATE, 1)))) == np.arange(len(stack))
    table = GlyphTable(stack[keep], np.array(names)[keep], np.array(packages)[keep], groups[keep], without,
                       len(failed), int((~keep).sum()))
    if log is not None:
        log(f"fonts: rendered {table.note()}")
    return table


# ------------------------------------------------------------------------------------------- caching

def default_cache_dir() -> Path:
    return Path(os.environ.get("HMAT_BENCH_DATA_CACHE") or Path.home() / ".cache" / "hmat-bench")


def _read_table(path) -> GlyphTable:
    check_archive(path)
    with np.load(path, allow_pickle=False) as z:
        counts = z["counts"]
        return GlyphTable(z["images"], z["names"], z["packages"], z["groups"], int(counts[0]), int(counts[1]),
                          int(counts[2]))


def glyph_table(root=None, size: int = 32, ink: int = 28, cache_dir=None) -> GlyphTable:
    """The glyph table of the fonts under ``root`` (default: where the package installs), read from the
    cache when its key matches, else rendered (about 15 s) and cached atomically."""
    root = Path(root) if root else DEFAULT_ROOT
    files = font_files(root)
    path = Path(cache_dir or default_cache_dir()) / f"fonts-{size}px-{cache_key(root, files, size, ink)}.npz"
    return _cached_table(str(path), str(root), size, ink)


@lru_cache(maxsize=2)
def _cached_table(path: str, root: str, size: int, ink: int) -> GlyphTable:
    """The table cached at ``path`` (a damaged file is moved aside and the table rendered anew)."""
    table = load_checked(path, _read_table)  # None when absent, or damaged (then moved aside)
    if table is None:
        table = build_table(root, size, ink, say)
        counts = np.array([table.without_characters, table.failed, table.duplicates])

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, images=table.images, names=table.names, packages=table.packages, groups=table.groups,
                         counts=counts)

        atomic_write_via(path, write)
    return table


# ------------------------------------------------------------------------------------------- splitting

def split_fonts(groups: np.ndarray, seed: int, test_fraction: float = 0.5) -> np.ndarray:
    """Boolean per font: in the test half. The design groups are shuffled with ``seed`` and taken into
    test until ``test_fraction`` of the fonts are there; the rest train. No group straddles the two."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"fonts: test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    groups = np.asarray(groups)
    order = np.random.default_rng([int(seed), 1]).permutation(np.unique(groups))
    test = np.zeros(len(groups), dtype=bool)
    for g in order:
        if test.sum() >= test_fraction * len(groups):
            break
        test |= groups == g
    if test.all() or not test.any():
        raise ValueError(f"fonts: {len(np.unique(groups))} design groups cannot be split {test_fraction:.0%} test")
    return test


def _choose(fonts: np.ndarray, cap: int | None, rng, what: str) -> np.ndarray:
    if cap is None:
        return fonts
    if not isinstance(cap, int) or cap < 2:
        raise ValueError(f"fonts: {what} must be an integer >= 2 or null, got {cap!r}")
    return np.sort(rng.choice(fonts, min(cap, len(fonts)), replace=False))


def _order_by_group(fonts: np.ndarray, groups: np.ndarray, rng) -> np.ndarray:
    """``fonts`` ordered group by group, the groups in random order: class ids then run group by group, so
    that the last block of training classes (``val``) holds whole groups but at its boundary."""
    rank = {g: i for i, g in enumerate(rng.permutation(np.unique(groups[fonts])))}
    return fonts[np.argsort([rank[g] for g in groups[fonts]], kind="stable")]


def font_split(table: GlyphTable, seed: int, test_fraction: float, train_classes: int | None,
               test_classes: int | None, per_class: int | None, test_per_class: int | None):
    """(images (N, 1, S, S), labels, official_train, fonts, characters) of one draw (per image), train fonts
    first (labels 0..), then test fonts; each font shows ``per_class`` (train) or ``test_per_class``
    (test) of its characters, drawn per font (all 62 when None)."""
    rng = np.random.default_rng([int(seed), 2])
    test = split_fonts(table.groups, seed, test_fraction)
    train_fonts = _order_by_group(_choose(np.flatnonzero(~test), train_classes, rng, "train_classes"),
                                  table.groups, rng)
    test_fonts = _choose(np.flatnonzero(test), test_classes, rng, "test_classes")
    fonts, chars, flags = [], [], []
    for chosen, k, is_train in ((train_fonts, per_class, True), (test_fonts, test_per_class, False)):
        if k is not None and (not isinstance(k, int) or not 2 <= k <= len(CHARACTERS)):
            raise ValueError(f"fonts: characters per font must be an integer in 2..62 or null, got {k!r}")
        for f in chosen:
            c = np.arange(len(CHARACTERS)) if k is None else np.sort(rng.choice(len(CHARACTERS), k, replace=False))
            fonts.append(np.full(len(c), f))
            chars.append(c)
            flags.append(np.full(len(c), is_train))
    fonts, chars, flags = np.concatenate(fonts), np.concatenate(chars), np.concatenate(flags)
    ids = {f: i for i, f in enumerate(np.concatenate([train_fonts, test_fonts]))}
    labels = np.array([ids[f] for f in fonts], dtype=np.int64)
    images = table.images[fonts, chars][:, None]
    return images, labels, flags, fonts, chars


def _gray_to_rgb(images: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(images)).expand(-1, 3, -1, -1)


SPLIT_DRAW = "the split of the fonts (which design groups train and test, the fonts and characters kept)"


@register_dataset("fonts", generated=True, draws=SPLIT_DRAW)
def fonts(root=None, split="train", transform=None, val_fraction: float = 0.2, seed: int = 0,
          test_fraction: float = 0.5, train_classes: int | None = None, test_classes: int | None = None,
          per_class: int | None = None, test_per_class: int | None = None, size: int = 32, ink: int = 28,
          cache_dir=None, val_fold: int | None = None):
    """Font retrieval: a class is a font (see the module's docstring). ``root``: the fonts folder (default:
    where ``texlive-fonts-extra`` installs). ``seed`` draws the split of the design groups, the fonts kept
    under ``train_classes`` / ``test_classes`` and the characters shown under ``per_class`` /
    ``test_per_class``; ``val`` is the last ``val_fraction`` of the training fonts, whole groups but at
    its boundary. Training augmentation: shifts of up to 2 pixels, no flips (a flip turns b into d)."""
    table = glyph_table(root, size, ink, cache_dir)
    images, labels, official_train, _, _ = font_split(table, seed, test_fraction, train_classes, test_classes,
                                                      per_class, test_per_class)
    mask = class_split_mask(labels, official_train, split, val_fraction, val_fold=val_fold)
    if transform is None:
        transform = tensor_transform(split, FONT_MEAN, FONT_STD, pad=2, flip=False)
    dataset = TensorImageDataset(_gray_to_rgb(images[mask]), labels[mask], transform, split)
    dataset.source = f"{PACKAGE}: {table.note()}"
    return dataset


@register_dataset("fonts-cls", generated=True, draws=SPLIT_DRAW)
def fonts_cls(root=None, split="train", transform=None, val_fraction: float = 0.1, val_seed: int = 0,
              seed: int = 0, test_fraction: float = 0.5, train_fonts: int | None = None,
              test_fonts: int | None = None, size: int = 32, ink: int = 28, cache_dir=None, augment: bool = True):
    """Character classification (62 classes) across fonts: trained on the glyphs of the training fonts,
    tested on those of the test fonts (design groups never shared, drawn by ``seed``); ``val`` is a
    stratified ``val_fraction`` of the training glyphs. ``train_fonts`` / ``test_fonts`` cap the fonts."""
    table = glyph_table(root, size, ink, cache_dir)
    images, _, official_train, _, chars = font_split(table, seed, test_fraction, train_fonts, test_fonts, None, None)
    if transform is None:
        transform = tensor_transform(split if augment else "test", FONT_MEAN, FONT_STD, pad=2, flip=False)
    source = (f"fonts-cls, the 62 characters A-Z, a-z, 0-9 drawn by real fonts ({PACKAGE}; {table.note()}); "
              f"{int(official_train.sum()) // 62} training and {int((~official_train).sum()) // 62} test fonts, "
              f"the fonts and their split drawn by the dataset's seed")
    dataset = make_split("fonts-cls", images, chars, official_train, split, transform, list(CHARACTERS), source,
                         val_fraction, val_seed, embedded=False)
    dataset.images = dataset.images.expand(-1, 3, -1, -1)  # grey glyphs as the 3 channels the networks take
    return dataset
