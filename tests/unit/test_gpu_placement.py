"""MIG placement on one GPU (reference/gpu.md §1 "Placements" and "Derived rules").

An independent brute-force oracle (try every start of every instance) checks the catalog's
backtracking search; the enumeration counts of the reference are reproduced and their exact
meaning written down.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leases import mig_geometry
from leases.gpu_catalog import (
    MODELS,
    feasible_layouts,
    fits_one_gpu,
    get_model,
    maximal_layouts,
    place_on_gpu,
)

EIGHT_SLICE = [m.id for m in MODELS.values() if m.mig and m.memory_slices == 8]
H100 = get_model("H100-80GB")
A30 = get_model("A30")


def _oracle(model, profiles) -> bool:
    """Fill memory slices left to right, each either empty or the start of some instance."""
    if any(k > model.profiles[n].max_instances for n, k in profiles.items()):
        return False
    instances = [model.profiles[n] for n, k in profiles.items() for _ in range(k)]
    if sum(p.compute_slices for p in instances) > model.compute_slices:
        return False
    if sum(p.media_extensions for p in instances) > 1:
        return False

    def fill(cell: int, left: dict[str, int]) -> bool:
        if not any(left.values()):
            return True
        if cell >= model.memory_slices:
            return False
        for name, count in left.items():
            profile = model.profiles[name]
            end = cell + profile.memory_slices
            fits_here = count and cell in profile.starts and end <= model.memory_slices
            if fits_here and fill(end, {**left, name: count - 1}):
                return True
        return fill(cell + 1, left)

    return fill(0, dict(profiles))


def _shape(model, compute: int, memory: int) -> str:
    """Name the profile of `model` with these slices and no media extensions."""
    (name,) = [
        p.name
        for p in model.profiles.values()
        if (p.compute_slices, p.memory_slices, p.media_extensions) == (compute, memory, False)
    ]
    return name


def _check_placement(model, profiles, placement) -> None:
    assert sorted(n for n, _ in placement) == sorted(n for n, k in profiles.items() for _ in range(k))
    used: set[int] = set()
    for name, start in placement:
        profile = model.profiles[name]
        assert start in profile.starts
        cells = set(range(start, start + profile.memory_slices))
        assert not cells & used and max(cells) < model.memory_slices
        used |= cells


# --- single-profile placements: `-lgipp` {starts}:size ---------------------------------------


@pytest.mark.parametrize("model_id", EIGHT_SLICE)
@pytest.mark.parametrize(
    ("shape", "expected_starts"),
    [
        ((1, 1), [0, 1, 2, 3, 4, 5, 6]),  # 19 {0..6}:1
        ((1, 2), [0, 2, 4, 6]),  # 15 {0,2,4,6}:2
        ((2, 2), [0, 2, 4]),  # 14 {0,2,4}:2
        ((3, 4), [0, 4]),  # 9 {0,4}:4
        ((4, 4), [0]),  # 5 {0}:4
        ((7, 8), [0]),  # 0 {0}:8
    ],
)
def test_filling_a_gpu_with_one_profile_uses_every_valid_start(model_id, shape, expected_starts):
    model = get_model(model_id)
    name = _shape(model, *shape)
    placement = place_on_gpu(model, {name: len(expected_starts)})
    assert placement == [(name, s) for s in expected_starts]
    assert not fits_one_gpu(model, {name: len(expected_starts) + 1})


@pytest.mark.parametrize(
    ("name", "expected_starts"),
    [("1g.6gb", [0, 1, 2, 3]), ("2g.12gb", [0, 2]), ("4g.24gb", [0])],
)
def test_a30_placements(name, expected_starts):
    assert place_on_gpu(A30, {name: len(expected_starts)}) == [(name, s) for s in expected_starts]
    assert not fits_one_gpu(A30, {name: len(expected_starts) + 1})


def test_a30_media_profiles_start_where_their_plain_twins_do():
    for profiles in ({"2g.12gb+me": 1, "2g.12gb": 1}, {"1g.6gb+me": 1, "1g.6gb": 3}):
        placement = place_on_gpu(A30, profiles)
        assert placement is not None
        _check_placement(A30, profiles, placement)
    assert sorted(s for _, s in place_on_gpu(A30, {"2g.12gb+me": 1, "2g.12gb": 1})) == [0, 2]


def test_search_honours_start_slots_not_just_slice_sums():
    # Synthetic profiles: both want memory slices 0-1, so they clash although 2+2 <= 4.
    a = mig_geometry.MigProfile("a", 1, 1, 2, 1, (0,))
    b = mig_geometry.MigProfile("b", 2, 1, 2, 1, (0, 1))
    demand = mig_geometry.canonical({a: 1, b: 1})
    assert mig_geometry.place(demand, compute_slices=4, memory_slices=4) is None
    c = mig_geometry.MigProfile("c", 3, 1, 2, 1, (0, 2))
    both = mig_geometry.canonical({a: 1, c: 1})
    assert mig_geometry.place(both, compute_slices=4, memory_slices=4) == (("a", 0), ("c", 2))


# --- derived rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", EIGHT_SLICE)
def test_4g_plus_3g_only_as_4g_at_0_and_3g_at_4(model_id):
    model = get_model(model_id)
    four, three = _shape(model, 4, 4), _shape(model, 3, 4)
    assert place_on_gpu(model, {three: 1, four: 1}) == [(four, 0), (three, 4)]
    assert model.profiles[four].starts == (0,)  # so the 3g has only start 4 left


@pytest.mark.parametrize("model_id", EIGHT_SLICE)
def test_3g_plus_3g_fills_memory_and_strands_one_compute_slice(model_id):
    model = get_model(model_id)
    three, one = _shape(model, 3, 4), _shape(model, 1, 1)
    assert place_on_gpu(model, {three: 2}) == [(three, 0), (three, 4)]
    assert 2 * model.profiles[three].compute_slices == model.compute_slices - 1
    assert not fits_one_gpu(model, {three: 2, one: 1})


def test_a_1g_never_uses_memory_slice_7():
    for layout in feasible_layouts(H100, include_media_extensions=True):
        for name, start in place_on_gpu(H100, layout):
            if H100.profiles[name].memory_slices == 1:
                assert start < 7, layout
    # Seven 1g leave slice 7 empty; an eighth instance of any size cannot go there.
    assert place_on_gpu(H100, {"1g.10gb": 7}) == [("1g.10gb", s) for s in range(7)]


@pytest.mark.parametrize(
    ("model", "profiles"),
    [
        (H100, {"1g.10gb+me": 2}),
        (A30, {"1g.6gb+me": 2}),
        (A30, {"1g.6gb+me": 1, "2g.12gb+me": 1}),  # 3 of 4 slices, still refused
    ],
)
def test_only_one_media_extension_instance_per_gpu(model, profiles):
    assert not fits_one_gpu(model, profiles)


def test_one_media_extension_instance_beside_plain_ones():
    assert fits_one_gpu(H100, {"1g.10gb+me": 1, "1g.10gb": 6})
    assert not fits_one_gpu(H100, {"1g.10gb+me": 1, "1g.10gb": 7})  # 8 compute slices


@pytest.mark.parametrize(
    ("profiles", "fits"),
    [
        ({}, True),
        ({"1g.10gb": 0}, True),
        ({"7g.80gb": 1}, True),
        ({"7g.80gb": 1, "1g.10gb": 1}, False),
        ({"4g.40gb": 1, "2g.20gb": 1, "1g.10gb": 1}, True),
        ({"4g.40gb": 1, "2g.20gb": 2}, False),
        ({"1g.20gb": 4}, True),
        ({"1g.20gb": 4, "1g.10gb": 1}, False),
        ({"2g.20gb": 3, "1g.20gb": 1}, True),
        ({"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}, True),  # all-balanced
        ({"1g.10gb": 8}, False),
        ({"1g.20gb": 5}, False),
        ({"3g.40gb": 3}, False),
    ],
)
def test_fits_one_gpu_cases(profiles, fits):
    assert fits_one_gpu(H100, profiles) is fits
    assert fits_one_gpu("H100-80GB", profiles) is fits


@pytest.mark.parametrize("model_id", [m.id for m in MODELS.values() if m.mig])
def test_every_named_config_fits_one_gpu(model_id):
    model = get_model(model_id)
    for name, profiles in model.mig_configs.items():
        assert fits_one_gpu(model, profiles), name


def test_place_on_gpu_refuses_bad_input():
    with pytest.raises(ValueError, match=r"H100-80GB has no MIG profile '2g\.10gb'; valid"):
        place_on_gpu(H100, {"2g.10gb": 1})
    with pytest.raises(ValueError, match="must be >= 0"):
        place_on_gpu(H100, {"1g.10gb": -1})
    with pytest.raises(ValueError, match="T4 does not support MIG"):
        fits_one_gpu("T4", {"1g.10gb": 1})


def test_placement_is_memoised_on_the_canonical_multiset():
    mig_geometry._place.cache_clear()
    place_on_gpu(H100, {"3g.40gb": 1, "1g.10gb": 2})
    place_on_gpu(H100, {"1g.10gb": 2, "3g.40gb": 1, "7g.80gb": 0})
    info = mig_geometry._place.cache_info()
    assert (info.misses, info.hits) == (1, 1)


# --- the oracle -------------------------------------------------------------------------------


def _multisets(model):
    names = list(model.profiles)
    return st.lists(st.integers(0, 4), min_size=len(names), max_size=len(names)).map(
        lambda counts: {n: k for n, k in zip(names, counts, strict=True) if k}
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data(), model_id=st.sampled_from([m.id for m in MODELS.values() if m.mig]))
def test_search_agrees_with_brute_force(data, model_id):
    model = get_model(model_id)
    profiles = data.draw(_multisets(model))
    placement = place_on_gpu(model, profiles)
    assert (placement is not None) == _oracle(model, profiles)
    if placement is not None:
        _check_placement(model, profiles, placement)


def test_search_agrees_with_brute_force_on_every_small_h100_multiset():
    names = list(H100.profiles)
    for counts in itertools.product(range(3), repeat=len(names)):
        profiles = {n: k for n, k in zip(names, counts, strict=True) if k}
        assert fits_one_gpu(H100, profiles) == _oracle(H100, profiles), profiles


# --- enumeration: 77 / 28 / 17 and 9 / 4 ----------------------------------------------------
#
# What the reference's counts count, found by enumerating (reference §1 "Derived rules"):
# - a multiset is a count per profile (positions ignored), over the profiles without `+me`:
#   on the 8-slice family 1g, double-memory 1g, 2g, 3g, 4g, 7g; on the A30 1g, 2g, 4g;
# - "feasible" = fits on one GPU and is NOT empty: 77 (78 with the empty multiset); leaving out
#   the double-memory 1g gives 37 (12 maximal, 11 full), so 77 includes it;
# - "maximal" = no further instance of any of those profiles fits: 28;
# - "use all 7 compute slices" = the maximal ones whose compute slices sum to 7: 17. The other
#   11 strand compute for memory, e.g. 3g+3g or four double-memory 1g.
# - A30: 9 non-empty feasible (10 with empty), 4 maximal ({4g}, {2g,2g}, {2g,1g,1g}, {1g×4}),
#   all four using the 4 compute slices.
# With `+me` profiles included the counts would be 127 / 44 (A30: 19 / 8).


def _compute(model, layout):
    return sum(model.profiles[n].compute_slices * k for n, k in layout.items())


@pytest.mark.parametrize("model_id", EIGHT_SLICE)
def test_enumeration_of_the_8_slice_family(model_id):
    model = get_model(model_id)
    feasible = feasible_layouts(model)
    maximal = maximal_layouts(model)
    assert len(feasible) == 77
    assert len(maximal) == 28
    assert sum(_compute(model, m) == 7 for m in maximal) == 17
    assert {} not in feasible
    assert all(not n.endswith("+me") for layout in feasible for n in layout)
    double = _shape(model, 1, 2)
    assert len([m for m in feasible if double not in m]) == 37


def test_enumeration_of_a30():
    feasible = feasible_layouts(A30)
    maximal = maximal_layouts(A30)
    assert len(feasible) == 9
    assert sorted(map(sorted, (m.items() for m in maximal))) == sorted(
        map(
            sorted,
            (
                m.items()
                for m in (
                    {"4g.24gb": 1},
                    {"2g.12gb": 2},
                    {"2g.12gb": 1, "1g.6gb": 2},
                    {"1g.6gb": 4},
                )
            ),
        )
    )
    assert all(_compute(A30, m) == 4 for m in maximal)


def test_enumeration_with_media_extensions():
    assert (len(feasible_layouts(H100, include_media_extensions=True)), len(
        maximal_layouts(H100, include_media_extensions=True)
    )) == (127, 44)
    assert len(feasible_layouts(A30, include_media_extensions=True)) == 19


def test_every_feasible_layout_agrees_with_the_oracle():
    for model in (H100, A30):
        feasible = feasible_layouts(model, include_media_extensions=True)
        for layout in feasible:
            assert _oracle(model, layout), layout
        # and the 78th, empty, multiset is the only feasible one left out
        names = list(model.profiles)
        total = sum(
            _oracle(model, dict(zip(names, counts, strict=True)))
            for counts in itertools.product(
                *(range(model.profiles[n].max_instances + 1) for n in names)
            )
        )
        assert total == len(feasible) + 1
