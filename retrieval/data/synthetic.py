"""A procedurally generated fine-grained image set shaped like CUB-200 (no download).

Classes form a two-level hierarchy: ``genera`` share a body shape, size and colour
family; the ``species`` of a genus differ only in subtle cues (the colour and place
of two small parts, and the frequency and angle of a stripe texture). Every image
draws a random pose (shift, scale, rotation), lighting, clutter and noise, so a
network must learn the fine cues rather than a template. Everything is a pure
function of ``seed``: the same seed gives the same pixels on any machine.
"""

from __future__ import annotations

import numpy as np


def _class_params(rng: np.random.Generator, genera: int, species: int):
    params = []
    for _ in range(genera):
        g = {"ax": rng.uniform(5.5, 9.5), "ay": rng.uniform(3.5, 6.5), "hue": rng.uniform(0, 1),
             "body": rng.uniform(0.25, 0.9, 3)}
        for _ in range(species):
            s = dict(g)
            s["stripe_freq"] = rng.uniform(0.4, 1.6)
            s["stripe_angle"] = rng.uniform(0, np.pi)
            s["stripe_color"] = np.clip(g["body"] + rng.normal(0, 0.35, 3), 0, 1)
            s["parts"] = [(rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(1.3, 2.6), rng.uniform(0, 1, 3))
                          for _ in range(2)]
            params.append(s)
    return params


def _render(p, rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    # background: a random colour gradient plus one clutter disc
    bg0, bg1 = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
    t = (xx / size)[..., None]
    img = bg0 * (1 - t) + bg1 * t
    cx_c, cy_c, r_c = rng.uniform(0, size, 2).tolist() + [rng.uniform(2, 5)]
    img[(xx - cx_c) ** 2 + (yy - cy_c) ** 2 < r_c ** 2] = rng.uniform(0, 1, 3)
    # pose
    cx, cy = size / 2 + rng.uniform(-3, 3, 2)
    scale = rng.uniform(0.85, 1.15)
    theta = rng.uniform(-0.5, 0.5)
    c, s = np.cos(theta), np.sin(theta)
    u = ((xx - cx) * c + (yy - cy) * s) / scale
    v = (-(xx - cx) * s + (yy - cy) * c) / scale
    body = (u / p["ax"]) ** 2 + (v / p["ay"]) ** 2 < 1
    stripe = np.sin(p["stripe_freq"] * (u * np.cos(p["stripe_angle"]) + v * np.sin(p["stripe_angle"]))) > 0
    img[body] = p["body"]
    img[body & stripe] = p["stripe_color"]
    for pu, pv, pr, color in p["parts"]:
        img[(u - pu * p["ax"]) ** 2 + (v - pv * p["ay"]) ** 2 < pr ** 2] = color
    img = img * rng.uniform(0.75, 1.25) + rng.normal(0, 0.04, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8).transpose(2, 0, 1)


def generate_fine_grained(seed: int = 0, genera: int = 20, species: int = 10, per_class: int = 30,
                          size: int = 32, test_per_class: int | None = None,
                          image_seed=None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, size, size) uint8 and labels (N,) int64; classes 0..genera*species-1.

    Genera are interleaved across the label range, so the first and second halves of
    the classes (the train/test split) each hold species of every genus.
    ``test_per_class`` (default ``per_class``) images are drawn for each class of the
    second half. The first half is drawn first, so its pixels do not depend on it: a
    larger test gallery leaves the training and validation images unchanged.

    ``image_seed`` (default: none) draws the images from a stream of their own, seeded with
    it, after the classes were drawn from ``seed``: the same classes, other images. Two
    calls with one ``seed`` and different ``image_seed`` give disjoint draws of the same
    classes (the closed-set classification set uses this for its train and test images).
    """
    rng = np.random.default_rng(seed)
    params = _class_params(rng, genera, species)
    if image_seed is not None:
        rng = np.random.default_rng(image_seed)
    order = np.arange(genera * species).reshape(genera, species).T.ravel()  # interleave genera
    half = len(order) // 2
    images, labels = [], []
    for label, k in enumerate(order):
        count = per_class if test_per_class is None or label < half else test_per_class
        for _ in range(count):
            images.append(_render(params[k], rng, size))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64)
