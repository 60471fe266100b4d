"""benchmarks/shape_probe.py: the one-object images and the linear probe, without a model."""

from __future__ import annotations

import numpy as np
from bench_scripts import load_benchmark

from o3video.data.shapes import COLOURS, SHAPES


def test_each_image_holds_its_object_in_its_colour() -> None:
    sp = load_benchmark("shape_probe")
    pics, shapes, colours = sp.images(8, seed=3, size_px=(24, 40))
    assert pics.shape == (8, 112, 112, 3) and pics.dtype == np.uint8
    assert set(shapes) <= set(range(len(SHAPES))) and set(colours) <= set(range(len(COLOURS)))
    names = list(COLOURS)
    for pic, c, s in zip(pics, colours, shapes, strict=True):
        painted = np.all(pic == COLOURS[names[c]], axis=-1).sum()
        # the painted area is about the mask's (24 px at least: a cross is the smallest)
        assert painted >= 0.3 * 24 * 24, (SHAPES[s], names[c], painted)


def test_the_probe_reads_a_label_that_is_in_the_features_and_not_one_that_is_not() -> None:
    sp = load_benchmark("shape_probe")
    rng = np.random.default_rng(0)
    labels = rng.integers(5, size=400)
    noise = rng.normal(size=(400, 16))
    coded = noise.copy()
    coded[np.arange(400), labels] += 4.0  # the label, linearly readable
    assert sp.probe(coded, labels, 5) >= 0.9
    assert sp.probe(noise, labels, 5) <= 0.45  # chance is 0.2
