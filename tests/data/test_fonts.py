"""The fonts sets (retrieval/data/fonts.py) on a miniature copy of texlive-fonts-extra's layout."""

from __future__ import annotations

import numpy as np
import pytest

from fonts_fixture import PACKAGES, PER_PACKAGE, add_copy, make_root
from retrieval.data import build_dataset
from retrieval.data import fonts as fontdata
from retrieval.data.base import DatasetNotFoundError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_root(tmp_path_factory.mktemp("fonts"))


@pytest.fixture()
def cache(tmp_path):
    fontdata._cached_table.cache_clear()
    yield tmp_path / "cache"
    fontdata._cached_table.cache_clear()


@pytest.fixture(scope="module")
def table(root):
    return fontdata.build_table(root)


def _all(root, cache, split, **options):
    return build_dataset("fonts", root, split, cache_dir=cache, **options)


def test_render_draws_every_character_inside_the_image(root):
    path = sorted((root / "opentype" / "public" / "fira").glob("*.otf"))[0]
    glyphs = fontdata.render_font(path, size=32, ink=28)
    assert glyphs.shape == (62, 32, 32) and glyphs.dtype == np.uint8
    assert (glyphs.reshape(62, -1).max(1) > 128).all()  # every glyph has ink
    rows, cols = np.nonzero(glyphs.max(0))
    assert rows.min() >= 1 and rows.max() <= 30 and cols.min() >= 1 and cols.max() <= 30  # ink within 28 px, centred
    assert (np.abs(glyphs[1:].astype(int) - glyphs[:1]).sum((1, 2)) > 0).all()  # no two characters drawn alike
    spans = [max(np.ptp(np.nonzero(g)[0]), np.ptp(np.nonzero(g)[1])) + 1 for g in glyphs]
    assert max(spans) in (27, 28, 29)  # one scale per font: its largest glyph spans the ink box ...
    assert min(spans) < 20  # ... and small characters stay small
    assert np.array_equal(glyphs, fontdata.render_font(path, size=32, ink=28))  # deterministic


def test_symbol_fonts_lack_the_characters_and_garbage_fails_to_render(tmp_path):
    icons = fontdata.DEFAULT_ROOT / "opentype" / "public" / "ccicons" / "ccicons.otf"
    if icons.exists():
        assert not fontdata.has_characters(icons)
    bad = tmp_path / "bad.otf"
    bad.write_bytes(b"not a font" * 100)
    with pytest.raises(fontdata.FontRenderError, match="bad.otf"):
        fontdata.render_font(bad)


def test_duplicates_are_kept_once_and_join_their_packages(tmp_path):
    root = make_root(tmp_path / "dup", packages=PACKAGES[:4])
    copied = add_copy(root, "chivo", "antt")
    table = fontdata.build_table(root)
    assert table.duplicates == 1 and len(table.names) == 4 * PER_PACKAGE
    original = "opentype/public/chivo/" + copied.rsplit("copy-", 1)[1]
    assert len({copied, original} & set(table.names)) == 1  # the pair is kept once (its first path)
    groups = dict(zip(table.packages, table.groups))
    assert groups["chivo"] == groups["antt"]  # one design in two packages: one split group
    assert len({groups["montserrat"], groups["inriafonts"], groups["chivo"]}) == 3
    assert "1 near-duplicates" in table.note()


def test_a_few_broken_fonts_are_skipped_and_counted_many_are_an_error(tmp_path, monkeypatch):
    root = make_root(tmp_path / "broken")
    (root / "opentype" / "public" / "antt" / "zz-broken.otf").write_bytes(b"\0" * 64)
    monkeypatch.setattr(fontdata, "has_characters", lambda path: True)  # a broken file reaches the renderer
    monkeypatch.setattr(fontdata, "MAX_FAILED", 0.03)
    with pytest.raises(fontdata.FontRenderError, match="1 of 25 fonts .* failed to render"):
        fontdata.build_table(root)  # 1 in 25 is above 3%
    monkeypatch.setattr(fontdata, "MAX_FAILED", 0.1)
    table = fontdata.build_table(root)
    assert table.failed == 1 and len(table.names) == 24 and "1 that failed to render" in table.note()


def test_missing_package_is_one_line_naming_the_install_command(tmp_path, cache):
    for root in (tmp_path / "absent", tmp_path):
        with pytest.raises(DatasetNotFoundError) as err:
            build_dataset("fonts", root, "test", cache_dir=cache)
        message = str(err.value)
        assert "\n" not in message and "apt-get install texlive-fonts-extra" in message and str(root) in message


def test_split_is_class_disjoint_by_design_group_and_deterministic(root, cache, table):
    splits = {s: _all(root, cache, s, seed=3) for s in ("fit", "val", "test", "train")}
    fit, val, test = (set(np.unique(splits[s].labels)) for s in ("fit", "val", "test"))
    assert not fit & val and not fit & test and not val & test
    assert fit | val == set(np.unique(splits["train"].labels))
    assert len(test) + len(fit) + len(val) == len(table.names)
    images, labels, train, fonts, chars = fontdata.font_split(table, 3, 0.5, None, None, None, None)
    for group in np.unique(table.groups):  # no design group straddles train and test
        assert len(set(train[np.isin(fonts, np.flatnonzero(table.groups == group))])) == 1
    assert np.array_equal(images[:, 0], table.images[fonts, chars])
    again = _all(root, cache, "test", seed=3)
    assert np.array_equal(again.labels, splits["test"].labels) and (again.images == splits["test"].images).all()
    test_fonts = set()
    for s in range(6):
        _, _, train, fonts, _ = fontdata.font_split(table, s, 0.5, None, None, None, None)
        test_fonts.add(frozenset(fonts[~train]))
    assert len(test_fonts) > 1  # another seed, another split


def test_caps_and_characters_per_font(root, cache):
    fit = _all(root, cache, "fit", seed=1, per_class=6)
    assert (np.bincount(fit.labels)[np.unique(fit.labels)] == 6).all()  # the sampler's m_per_class=5 fits
    test = _all(root, cache, "test", seed=1, test_classes=3, test_per_class=10)
    assert len(np.unique(test.labels)) == 3 and len(test) == 30
    assert tuple(test[0]["image"].shape) == (3, 32, 32)
    with pytest.raises(ValueError, match="characters per font"):
        _all(root, cache, "fit", seed=1, per_class=63)
    with pytest.raises(ValueError, match="test_fraction"):
        _all(root, cache, "fit", seed=1, test_fraction=1.0)


def test_cache_is_reused_and_rebuilt_when_the_package_version_changes(root, cache, monkeypatch):
    _all(root, cache, "test")
    files = sorted(cache.glob("fonts-32px-*.npz"))
    assert len(files) == 1
    fontdata._cached_table.cache_clear()
    monkeypatch.setattr(fontdata, "build_table", lambda *a, **k: pytest.fail("rendered although cached"))
    first = _all(root, cache, "test")
    monkeypatch.undo()
    fontdata._cached_table.cache_clear()
    monkeypatch.setattr(fontdata, "package_version", lambda root: "2099.1-1")
    second = _all(root, cache, "test")
    assert len(sorted(cache.glob("fonts-32px-*.npz"))) == 2  # a new key: rendered anew
    assert np.array_equal(first.labels, second.labels)


def test_a_damaged_cache_is_moved_aside_and_rendered_again(root, cache, capsys):
    first = _all(root, cache, "test")
    path = next(cache.glob("fonts-32px-*.npz"))
    path.write_bytes(path.read_bytes()[:1000])
    fontdata._cached_table.cache_clear()
    again = _all(root, cache, "test")
    assert (again.images == first.images).all()
    assert list(cache.glob("*.damaged-*")) and "damaged" in capsys.readouterr().err


def test_character_classification_holds_62_classes_on_disjoint_fonts(root, cache, table):
    train = build_dataset("fonts-cls", root, "train", cache_dir=cache, seed=2)
    test = build_dataset("fonts-cls", root, "test", cache_dir=cache, seed=2)
    val = build_dataset("fonts-cls", root, "val", cache_dir=cache, seed=2)
    assert train.num_classes == test.num_classes == val.num_classes == 62
    assert len(train) % 62 == 0 and len(test) % 62 == 0 and len(train) + len(test) == 62 * len(table.names)
    assert train.class_names[:3] == ["A", "B", "C"] and "fonts-cls" in test.source
    _, _, official_train, fonts, _ = fontdata.font_split(table, 2, 0.5, None, None, None, None)
    assert not set(fonts[official_train]) & set(fonts[~official_train])


def test_a_replicate_note_says_the_split_is_drawn_not_generated():
    from benchmarks.runner.replicates import design_note

    note = design_note({"dataset": {"name": "fonts"}, "teacher": {}, "student": {}})
    assert "the split of the fonts" in note and "generated data" not in note
    assert "generated data" in design_note({"dataset": {"name": "synthetic"}, "teacher": {}, "student": {}})
