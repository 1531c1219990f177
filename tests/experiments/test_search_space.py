"""The fit search space: the grid, its stable keys, the seeded visiting order, architectures."""
from __future__ import annotations

import numpy as np
import pytest

from keras_tinyloc.errors import TinyLocError
from keras_tinyloc.experiments import search_space as ss


def test_grid_is_the_product_of_families_sizes_and_levers_in_canonical_order():
    g = ss.grid()
    want = [(f, h, l, p, a) for f in ss.FAMILIES for (h, l) in ss.FAMILIES[f].sizes for p in ss.POWERS
            for a in (False, True)]
    assert [(c.family, c.hidden, c.layers, c.power, c.augment) for c in g] == want
    assert len({c.key for c in g}) == len(g) == 48
    assert ss.grid(("mamba",)) == [c for c in g if c.family == "mamba"]


def test_keys_levers_and_options():
    c = ss.Candidate("mamba", 8, 1, power=3, augment=True)
    assert c.key == "mamba-H8L1-pow3-aug" and c.arch_key == "mamba-H8L1-pow3"
    assert c.lr == 1e-2 and ss.Candidate("mamba", 16, 1).lr == 3e-3  # small Mambas: lr 1e-2
    assert c.model_options() == {"input_power": 3} and ss.Candidate("mlp", 16, 1).model_options() == {}
    assert c.augment_options() == {"p_drop": 0.2, "offset_db": 8.0} and ss.Candidate("mlp", 16, 1).augment_options() == {}
    assert c.levers() == "x^3, aug(drop 0.2, ±8 dB), lr 0.01" and ss.Candidate("mlp", 16, 1).levers() == "plain"


def test_a_family_option_is_one_more_entry(monkeypatch):
    monkeypatch.setitem(ss.FAMILIES, "mamba-x", ss.Family("mamba-x", "mamba", ((4, 1),), model_options=(("d_state", 4),)))
    c = ss.grid(("mamba-x",))[0]
    assert c.model == "mamba" and c.model_options() == {"d_state": 4} and c.key == "mamba-x-H4L1"


def test_visit_order_is_a_seeded_permutation():
    g = ss.grid()
    a, b, c = ss.visit_order(g, 0), ss.visit_order(g, 0), ss.visit_order(g, 1)
    assert a == b and a != c and sorted(a, key=g.index) == g
    perm = np.random.default_rng(0).permutation(len(g))  # the documented rule
    assert a == [g[int(i)] for i in perm]
    with pytest.raises(TinyLocError, match=r"^--seed -1: must be an integer from 0 to 4294967295$"):
        ss.visit_order(g, -1)


def test_architectures_one_per_size_and_power():
    archs = ss.architectures(ss.grid())
    assert len(archs) == 24 and all(not a.augment for a in archs)
    assert [a.arch_key for a in archs] == list(dict.fromkeys(c.arch_key for c in ss.grid()))


@pytest.mark.parametrize("names, msg", [
    ((), "--families: name at least one family"),
    (("mlp", "lstm"), "--families 'lstm': choose from mlp, mdcsa, mamba"),
    (("mlp", "mlp"), "--families mlp,mlp: a family is named twice"),
])
def test_bad_families(names, msg):
    with pytest.raises(TinyLocError) as exc:
        ss.check_families(names)
    assert str(exc.value) == msg


def test_every_family_names_a_model_family_with_sizes_smallest_first():
    from keras_tinyloc.models import FAMILIES as MODEL_FAMILIES

    for f in ss.FAMILIES.values():
        assert f.model in MODEL_FAMILIES
        assert list(f.sizes) == sorted(f.sizes, key=lambda s: (s[1], s[0]))
