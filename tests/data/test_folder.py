"""A user's image folder: any mode, size and format loads as RGB at the configured size; corrupt
files are found by ``check_images`` before training; the class split of small folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from retrieval.data import CorruptImageError, build_dataset, check_images
from retrieval.data.base import ImageReadError, open_rgb, to_rgb
from retrieval.data.folder import folder


def _pixels(h, w, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def _source(mode: str, size=(20, 12), seed=0) -> Image.Image:
    """An image of ``mode`` (RGB, L, RGBA, P, LA, I;16, CMYK) and size (w, h)."""
    w, h = size
    rgb = Image.fromarray(_pixels(h, w, seed=seed))
    if mode == "I;16":
        return Image.fromarray(_pixels(h, w, 1, seed)[..., 0].astype(np.uint16) * 257)
    if mode == "RGBA":
        return Image.fromarray(np.dstack([_pixels(h, w, seed=seed), np.full((h, w), 128, np.uint8)]))
    return rgb.convert(mode)


def _folder(root, classes: int, per_class: int, sizes=((12, 10),), modes=("RGB",), formats=("png",)):
    """``root/c00 .. c<classes-1>`` with ``per_class`` images each, cycling sizes, modes and formats."""
    k = 0
    for c in range(classes):
        (root / f"c{c:02d}").mkdir(parents=True)
        for i in range(per_class):
            mode, size, fmt = modes[k % len(modes)], sizes[k % len(sizes)], formats[k % len(formats)]
            img = _source(mode, size, seed=k)
            if fmt == "jpg" and mode not in ("RGB", "L", "CMYK"):  # JPEG holds no alpha, palette or 16 bits
                img = to_rgb(img)
            img.save(root / f"c{c:02d}" / f"{i}.{fmt}", format="JPEG" if fmt == "jpg" else "PNG")
            k += 1
    return root


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "LA", "I;16", "CMYK"])
def test_every_mode_loads_as_rgb(tmp_path, mode):
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    src = _source(mode)
    src.save(path)
    with Image.open(path) as img:
        assert img.mode == mode  # the file really is of that mode
    out = open_rgb(path)
    assert out.mode == "RGB" and out.size == (20, 12)
    if mode == "L":
        assert np.array_equal(np.asarray(out)[..., 1], np.asarray(src))
    if mode == "I;16":  # 16 bits scaled to 8: value * 257 -> value
        assert np.array_equal(np.asarray(out)[..., 0], np.asarray(src, dtype=np.float64) / 257)


def test_transparent_pixels_become_white(tmp_path):
    pixels = np.zeros((4, 4, 4), np.uint8)
    pixels[..., 0] = 200  # red hidden under alpha 0 must not show
    pixels[0, 0] = (10, 20, 30, 255)  # one opaque pixel
    Image.fromarray(pixels).save(tmp_path / "a.png")
    out = np.asarray(open_rgb(tmp_path / "a.png"))
    assert tuple(out[0, 0]) == (10, 20, 30) and tuple(out[1, 1]) == (255, 255, 255)
    pal = Image.fromarray(pixels[..., :3]).convert("P")
    pal.save(tmp_path / "p.png", transparency=pal.getpixel((1, 1)))
    assert tuple(np.asarray(open_rgb(tmp_path / "p.png"))[1, 1]) == (255, 255, 255)


def test_mixed_sizes_modes_and_formats_resize_to_image_size(tmp_path):
    root = _folder(tmp_path / "imgs", classes=4, per_class=3, sizes=((12, 10), (40, 25), (7, 30), (64, 64)),
                   modes=("RGB", "L", "RGBA", "P"), formats=("png", "jpg"))
    for split in ("train", "test"):
        ds = build_dataset("folder", root, split, image_size=24)
        for i in range(len(ds)):
            item = ds[i]
            assert item["image"].shape == (3, 24, 24) and item["image"].dtype == torch.float32
            assert torch.isfinite(item["image"]).all()
    assert {p.suffix for p in ds.paths} == {".png", ".jpg"}


def test_large_jpegs_are_decoded_at_a_reduced_scale_that_covers_the_size(tmp_path):
    Image.fromarray(_pixels(600, 800)).save(tmp_path / "big.jpg", quality=80)
    assert open_rgb(tmp_path / "big.jpg").size == (800, 600)
    assert open_rgb(tmp_path / "big.jpg", draft=150).size == (200, 150)  # 1/4: the largest scale keeping >= 150
    assert open_rgb(tmp_path / "big.jpg", draft=73).size == (100, 75)  # 1/8
    root = tmp_path / "imgs"
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        Image.fromarray(_pixels(600, 800, seed=c)).save(root / f"c{c}" / "a.jpg")
    ds = folder(root, "train", image_size=64)
    assert ds.draft == 73  # the default transform's first resize, round(64 * 8 / 7)
    assert ds.load(0).size == (100, 75) and ds[0]["image"].shape == (3, 64, 64)
    assert folder(root, "train", image_size=64, transform=lambda im: im).draft is None  # own transform: full size


def test_exif_orientation_is_applied(tmp_path):
    root = tmp_path / "imgs"
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise to view
        Image.fromarray(_pixels(10, 30, seed=c)).save(root / f"c{c}" / "a.jpg", exif=exif)
    ds = folder(root, "train")
    assert ds.load(0).size == (10, 30)  # stored 30 wide x 10 high, shown 10 x 30
    assert folder(root, "train", exif_transpose=False).load(0).size == (30, 10)


def test_check_images_passes_good_files_and_counts_them(tmp_path):
    root = _folder(tmp_path / "imgs", classes=2, per_class=3, modes=("RGB", "L", "RGBA"), formats=("png", "jpg"))
    paths = sorted(root.rglob("*.*"))
    assert check_images(paths) == 6
    assert check_images(paths, limit=4) == 4 and check_images(paths, limit=100) == 6


def _corrupt(tmp_path, bad: int, good: int = 3):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(good):
        Image.fromarray(_pixels(8, 8, seed=i)).save(root / f"good{i}.png")
    jpeg = root / "good0.jpg"
    Image.fromarray(_pixels(64, 64)).save(jpeg, quality=90)
    data = jpeg.read_bytes()
    kinds = [lambda p: p.write_bytes(data[:len(data) // 2]),  # truncated JPEG
             lambda p: p.write_bytes(b"not an image at all"),
             lambda p: p.write_bytes(b"")]
    bads = []
    for i in range(bad):
        p = root / f"bad{i:02d}.{'jpg' if i % 3 != 1 else 'png'}"
        kinds[i % 3](p)
        bads.append(p)
    return sorted(root.iterdir()), bads


def test_check_images_names_the_corrupt_files_in_one_line(tmp_path):
    paths, bads = _corrupt(tmp_path, bad=2)
    with pytest.raises(CorruptImageError) as err:
        check_images(paths)
    msg = str(err.value)
    assert "\n" not in msg and isinstance(err.value, ValueError)
    assert msg.startswith(f"2 of {len(paths)} image files cannot be decoded")
    for p in bads:
        assert str(p) in msg
    assert "truncated" in msg and "expected image files" in msg
    assert "good" not in msg


def test_check_images_lists_the_first_few_and_counts_the_rest(tmp_path):
    paths, bads = _corrupt(tmp_path, bad=8)
    with pytest.raises(CorruptImageError, match="and 3 more") as err:
        check_images(paths)
    assert sum(str(p) in str(err.value) for p in bads) == 5


def test_a_png_with_a_bad_checksum_is_corrupt(tmp_path):
    Image.fromarray(_pixels(8, 8)).save(tmp_path / "a.png")
    data = bytearray((tmp_path / "a.png").read_bytes())
    data[-20] ^= 0xFF  # inside the IDAT chunk: its CRC no longer matches
    (tmp_path / "a.png").write_bytes(bytes(data))
    with pytest.raises(CorruptImageError, match="a.png"):
        check_images([tmp_path / "a.png"])


def test_check_images_sample_is_fixed_by_the_seed(tmp_path):
    paths, bads = _corrupt(tmp_path, bad=3, good=30)

    def found(limit, seed, order=paths):
        try:
            return check_images(order, limit=limit, seed=seed), ""
        except CorruptImageError as exc:
            return None, str(exc)

    first = found(10, 0)
    assert found(10, 0) == first and found(10, 0, order=paths[::-1]) == first  # the same files every time
    outcomes = {found(10, seed)[1] for seed in range(8)}
    assert len(outcomes) > 1  # another seed, another sample
    assert any(msg.startswith("1 of a sample of 10 of 34") or msg.startswith("2 of a sample of 10 of 34")
               or msg.startswith("3 of a sample of 10 of 34") for msg in outcomes if msg)
    assert found(0, 0) == (0, "")
    with pytest.raises(CorruptImageError, match="3 of 34"):
        check_images(paths, limit=None)


def test_a_corrupt_file_in_a_folder_fails_the_check_fast(tmp_path):
    root = _folder(tmp_path / "imgs", classes=8, per_class=4)
    (root / "c05" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    paths = [p for split in ("fit", "val", "test") for p in folder(root, split).paths]
    assert len(paths) == 32
    with pytest.raises(CorruptImageError, match=r"1 of 32 .*c05/2\.png"):
        check_images(paths)
    test = folder(root, "test")
    with pytest.raises(ImageReadError):  # what training would meet, later
        test[test.paths.index(root / "c05" / "2.png")]


@pytest.mark.parametrize("classes, expected", [(7, (2, 2, 3)), (8, (2, 2, 4)), (10, (3, 2, 5)), (20, (8, 2, 10)),
                                               (40, (16, 4, 20))])
def test_small_folder_split_keeps_two_validation_classes(tmp_path, classes, expected):
    root = _folder(tmp_path / "imgs", classes=classes, per_class=1)
    got = tuple(folder(root, split).num_classes for split in ("fit", "val", "test"))
    assert got == expected
    names = {split: {p.parent.name for p in folder(root, split).paths} for split in ("fit", "val", "test")}
    assert not (names["fit"] & names["val"]) and not (names["val"] & names["test"])
    assert max(names["fit"]) < min(names["val"]) < min(names["test"])  # sorted: fit, then val, then test


def test_below_seven_class_folders_fit_has_one_class(tmp_path):
    """The loader still builds the split; the runner's preflight (benchmarks.runner.sampler_fit) stops there."""
    root = _folder(tmp_path / "imgs", classes=6, per_class=1)
    assert folder(root, "fit").num_classes == 1 and folder(root, "val").num_classes == 2
