"""The GPU catalog against shared/reference/gpu.md §1–§3: profiles, configs, units, labels.

The expected values are written out here from the reference, not derived from the catalog, so
a wrong number in leases/gpu_catalog.py fails a test.
"""

from __future__ import annotations

import pytest

from leases.gpu_catalog import (
    MODELS,
    GpuModel,
    UnknownGpuModel,
    get_model,
    mig_config_for,
    parse_product,
    units_per_gpu,
)

# The columns of the reference §1 table for the 8-slice family, with the profile ids of
# §1 "Profile IDs" and the `-lgipp` placements of §1 "Placements":
# (profile id, compute slices, memory slices, max instances, valid starts).
_COLUMNS_8 = (
    (19, 1, 1, 7, (0, 1, 2, 3, 4, 5, 6)),  # 1g          {0..6}:1
    (20, 1, 1, 1, (0, 1, 2, 3, 4, 5, 6)),  # 1g+me       {0..6}:1
    (15, 1, 2, 4, (0, 2, 4, 6)),  # 1g double memory     {0,2,4,6}:2
    (14, 2, 2, 3, (0, 2, 4)),  # 2g                      {0,2,4}:2
    (9, 3, 4, 2, (0, 4)),  # 3g                          {0,4}:4
    (5, 4, 4, 1, (0,)),  # 4g                            {0}:4
    (0, 7, 8, 1, (0,)),  # 7g                            {0}:8
)
# The rows of that table: profile names in column order.
_ROWS_8 = {
    "A100-40GB": ("1g.5gb", "1g.5gb+me", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"),
    "A100-80GB": ("1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    "H100-80GB": ("1g.10gb", "1g.10gb+me", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    "H100-NVL-94GB": (
        "1g.12gb",
        "1g.12gb+me",
        "1g.24gb",
        "2g.24gb",
        "3g.47gb",
        "4g.47gb",
        "7g.94gb",
    ),
    "H200-141GB": (
        "1g.18gb",
        "1g.18gb+me",
        "1g.35gb",
        "2g.35gb",
        "3g.71gb",
        "4g.71gb",
        "7g.141gb",
    ),
    "B200": ("1g.23gb", "1g.23gb+me", "1g.45gb", "2g.45gb", "3g.90gb", "4g.90gb", "7g.180gb"),
}
# A30 (4 compute, 4 memory slices): 14/21 {0,1,2,3}:1; 5/6 {0,2}:2; 0 {0}:4.
_A30_ROWS = (
    ("1g.6gb", 14, 1, 1, 4, (0, 1, 2, 3)),
    ("1g.6gb+me", 21, 1, 1, 1, (0, 1, 2, 3)),
    ("2g.12gb", 5, 2, 2, 2, (0, 2)),
    ("2g.12gb+me", 6, 2, 2, 1, (0, 2)),
    ("4g.24gb", 0, 4, 4, 1, (0,)),
)
PROFILE_ROWS = [
    (model, name, *column)
    for model, names in _ROWS_8.items()
    for name, column in zip(names, _COLUMNS_8, strict=True)
] + [("A30", *row) for row in _A30_ROWS]

MIG_MODELS = ("A30", *_ROWS_8)
PLAIN_MODELS = {"L4": 24, "L40S": 48, "A10": 24, "T4": 16}


@pytest.mark.parametrize(
    ("model_id", "name", "profile_id", "compute", "memory", "max_instances", "starts"),
    PROFILE_ROWS,
    ids=[f"{row[0]}:{row[1]}" for row in PROFILE_ROWS],
)
def test_profile_row(model_id, name, profile_id, compute, memory, max_instances, starts):
    profile = get_model(model_id).profiles[name]
    assert profile.name == name
    assert profile.profile_id == profile_id
    assert (profile.compute_slices, profile.memory_slices) == (compute, memory)
    assert profile.max_instances == max_instances
    assert profile.starts == starts
    assert profile.media_extensions == name.endswith("+me")


@pytest.mark.parametrize("model_id", MIG_MODELS)
def test_mig_model_has_exactly_the_reference_profiles(model_id):
    expected = {row[1] for row in PROFILE_ROWS if row[0] == model_id}
    assert set(get_model(model_id).profiles) == expected


@pytest.mark.parametrize(
    ("model_id", "memory_gb", "slices"),
    [
        ("A30", 24, (4, 4)),
        ("A100-40GB", 40, (7, 8)),
        ("A100-80GB", 80, (7, 8)),
        ("H100-80GB", 80, (7, 8)),
        ("H100-NVL-94GB", 94, (7, 8)),
        ("H200-141GB", 141, (7, 8)),
        ("B200", 180, (7, 8)),
    ],
)
def test_mig_model_totals(model_id, memory_gb, slices):
    model = get_model(model_id)
    assert model.mig
    assert model.memory_gb == memory_gb
    assert (model.compute_slices, model.memory_slices) == slices


@pytest.mark.parametrize(("model_id", "memory_gb"), PLAIN_MODELS.items())
def test_plain_models_have_no_mig(model_id, memory_gb):
    model = get_model(model_id)
    assert not model.mig
    assert model.memory_gb == memory_gb
    assert dict(model.profiles) == {} and dict(model.mig_configs) == {}


def test_catalog_lists_exactly_the_supported_models():
    assert set(MODELS) == set(MIG_MODELS) | set(PLAIN_MODELS)
    assert all(MODELS[model_id].id == model_id for model_id in MODELS)


@pytest.mark.parametrize(
    ("model_id", "pci_ids"),
    [
        ("A30", {"0x20B7"}),
        ("A100-40GB", {"0x20B0", "0x20B1", "0x20F1", "0x20F6"}),
        ("A100-80GB", {"0x20B2", "0x20B5"}),
        ("H100-80GB", {"0x2330", "0x2331"}),
        ("H100-NVL-94GB", {"0x2321"}),
        ("H200-141GB", {"0x2335", "0x233B"}),
        ("B200", {"0x2901"}),
    ],
)
def test_pci_ids(model_id, pci_ids):
    assert set(get_model(model_id).pci_ids) == pci_ids


def test_catalog_is_read_only():
    with pytest.raises(TypeError):
        MODELS["X"] = MODELS["T4"]  # type: ignore[index]
    with pytest.raises(TypeError):
        get_model("H100-80GB").profiles["9g.1gb"] = None  # type: ignore[index]
    assert hash(get_model("H100-80GB")) == hash(get_model("H100-80GB"))


# --- get_model ------------------------------------------------------------------------------


def test_get_model_is_case_insensitive():
    assert get_model("h100-80gb") is MODELS["H100-80GB"]


def test_unknown_model_lists_the_known_ids():
    with pytest.raises(UnknownGpuModel) as caught:
        get_model("V100")
    message = str(caught.value)
    assert "V100" in message
    assert all(model_id in message for model_id in MODELS)
    # Callers may catch either family.
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ValueError)


# --- named mig-parted configs ---------------------------------------------------------------

_CONFIGS_8 = {
    # model: (profiles of _ROWS_8 order) -> expected all-balanced
    "A100-40GB": {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1},
    "A100-80GB": {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1},
    "H100-80GB": {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1},
    "H100-NVL-94GB": {"1g.12gb": 2, "2g.24gb": 1, "3g.47gb": 1},
    "H200-141GB": {"1g.18gb": 2, "2g.35gb": 1, "3g.71gb": 1},
    "B200": {"1g.23gb": 2, "2g.45gb": 1, "3g.90gb": 1},
}


@pytest.mark.parametrize("model_id", _ROWS_8)
def test_named_configs_of_the_8_slice_family(model_id):
    one, one_me, double, two, three, four, seven = _ROWS_8[model_id]
    configs = {name: dict(c) for name, c in get_model(model_id).mig_configs.items()}
    assert configs == {
        "all-disabled": {},
        "all-enabled": {},
        f"all-{one}": {one: 7},
        f"all-{one}.me": {one_me: 1},
        f"all-{double}": {double: 4},
        f"all-{two}": {two: 3},
        f"all-{three}": {three: 2},
        f"all-{four}": {four: 1},
        f"all-{seven}": {seven: 1},
        "all-balanced": _CONFIGS_8[model_id],
    }


def test_named_configs_of_a30():
    configs = {name: dict(c) for name, c in get_model("A30").mig_configs.items()}
    assert configs == {
        "all-disabled": {},
        "all-enabled": {},
        "all-1g.6gb": {"1g.6gb": 4},
        "all-1g.6gb.me": {"1g.6gb+me": 1},
        "all-2g.12gb": {"2g.12gb": 2},
        "all-2g.12gb.me": {"2g.12gb+me": 1},
        "all-4g.24gb": {"4g.24gb": 1},
        "all-balanced": {"1g.6gb": 2, "2g.12gb": 1},
    }


def test_reference_examples_of_named_configs():
    # "all-1g.10gb = 7 on 80GB parts, 4 on A100-40GB via device-filter" (reference §2).
    assert dict(get_model("H100-80GB").mig_configs["all-1g.10gb"]) == {"1g.10gb": 7}
    assert dict(get_model("A100-80GB").mig_configs["all-1g.10gb"]) == {"1g.10gb": 7}
    assert dict(get_model("A100-40GB").mig_configs["all-1g.10gb"]) == {"1g.10gb": 4}


@pytest.mark.parametrize(
    ("model_id", "profile", "config"),
    [
        ("H100-80GB", "1g.10gb", "all-1g.10gb"),
        ("H100-80GB", "1g.10gb+me", "all-1g.10gb.me"),
        ("H100-80GB", "3g.40gb", "all-3g.40gb"),
        ("A100-40GB", "1g.10gb", "all-1g.10gb"),
        ("A30", "2g.12gb+me", "all-2g.12gb.me"),
        ("B200", "7g.180gb", "all-7g.180gb"),
    ],
)
def test_mig_config_for(model_id, profile, config):
    assert mig_config_for(model_id, profile) == config
    assert dict(get_model(model_id).mig_configs[config]) == {
        profile: get_model(model_id).profiles[profile].max_instances
    }


def test_mig_config_for_refuses_a_profile_of_another_model():
    with pytest.raises(ValueError, match=r"H100-80GB has no MIG profile '1g\.5gb'.*1g\.10gb"):
        mig_config_for("H100-80GB", "1g.5gb")


def test_mig_config_for_refuses_a_gpu_without_mig():
    with pytest.raises(ValueError, match="L4 does not support MIG"):
        mig_config_for("L4", "1g.10gb")


# --- units_per_gpu --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "units"),
    [
        ("1g.10gb", 7),
        ("1g.10gb+me", 1),
        ("1g.20gb", 4),
        ("2g.20gb", 3),
        ("3g.40gb", 2),
        ("4g.40gb", 1),
        ("7g.80gb", 1),
    ],
)
def test_units_per_gpu_mig_on_h100(profile, units):
    assert units_per_gpu("H100-80GB", mode="mig", profile=profile) == units


def test_units_per_gpu_mig_on_a30_and_a100_40gb():
    assert units_per_gpu("A30", mode="mig", profile="1g.6gb") == 4
    assert units_per_gpu("A30", mode="mig", profile="2g.12gb") == 2
    assert units_per_gpu(get_model("A100-40GB"), mode="mig", profile="1g.10gb") == 4


@pytest.mark.parametrize("model_id", ["H100-80GB", "T4", "A30"])
def test_units_per_gpu_timeslice_is_replicas(model_id):
    # On a MIG-capable model this time-slices the whole GPU.
    assert units_per_gpu(model_id, mode="timeslice", replicas=4) == 4
    assert units_per_gpu(model_id, mode="timeslice", replicas=2) == 2


@pytest.mark.parametrize("model_id", ["H100-80GB", "L40S"])
def test_units_per_gpu_full_is_one(model_id):
    assert units_per_gpu(model_id, mode="full") == 1


def test_units_per_gpu_accepts_the_policy_enum():
    from config.policy import TierMode

    assert units_per_gpu("H100-80GB", mode=TierMode.MIG, profile="2g.20gb") == 3


@pytest.mark.parametrize(
    ("model_id", "kwargs", "pattern"),
    [
        ("H100-80GB", {"mode": "mig", "profile": "1g.5gb"}, r"H100-80GB has no MIG profile.*"),
        ("H100-80GB", {"mode": "mig"}, r"needs a profile; valid: 1g\.10gb, 1g\.10gb\+me"),
        ("L4", {"mode": "mig", "profile": "1g.10gb"}, r"L4 does not support MIG.*timeslice"),
        ("A10", {"mode": "mig"}, r"A10 does not support MIG.*timeslice"),
        ("T4", {"mode": "timeslice", "replicas": 1}, r"T4 needs replicas >= 2, got 1"),
        ("T4", {"mode": "timeslice"}, r"T4 needs replicas >= 2, got None"),
        ("H100-80GB", {"mode": "timeslice", "replicas": 4, "profile": "1g.10gb"}, "whole"),
        ("H100-80GB", {"mode": "mig", "profile": "1g.10gb", "replicas": 2}, "timeslice"),
        ("H100-80GB", {"mode": "full", "replicas": 2}, "whole H100-80GB"),
        ("H100-80GB", {"mode": "shared"}, r"unknown mode 'shared'; valid modes: mig, timeslice"),
    ],
)
def test_units_per_gpu_refuses_bad_combinations(model_id, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        units_per_gpu(model_id, **kwargs)


def test_units_per_gpu_unknown_model():
    with pytest.raises(UnknownGpuModel, match="known models: A10, A100-40GB"):
        units_per_gpu("X100", mode="full")


# --- parse_product --------------------------------------------------------------------------

PRODUCTS = {
    "NVIDIA-A30": "A30",
    "NVIDIA-A100-SXM4-40GB": "A100-40GB",
    "NVIDIA-A100-PCIE-40GB": "A100-40GB",
    "A100-SXM4-40GB": "A100-40GB",
    "A100-PCIE-40GB": "A100-40GB",
    "NVIDIA-A100-SXM4-80GB": "A100-80GB",
    "NVIDIA-A100-80GB-PCIe": "A100-80GB",
    "NVIDIA-H100-80GB-HBM3": "H100-80GB",
    "NVIDIA-H100-PCIe": "H100-80GB",
    "NVIDIA-H100-NVL": "H100-NVL-94GB",
    "NVIDIA-H200": "H200-141GB",
    "NVIDIA-H200-NVL": "H200-141GB",
    "NVIDIA-B200": "B200",
    "NVIDIA-L4": "L4",
    "NVIDIA-L40S": "L40S",
    "NVIDIA-A10": "A10",
    "Tesla-T4": "T4",
}


def test_every_nvml_name_in_the_catalog_is_tested():
    assert {name for m in MODELS.values() for name in m.nvml_names} == set(PRODUCTS)


@pytest.mark.parametrize(("product", "model_id"), PRODUCTS.items())
def test_parse_plain_and_shared_product(product, model_id):
    plain = parse_product(product)
    assert (plain.model, plain.mig_profile, plain.shared) == (MODELS[model_id], None, False)
    assert (plain.raw, plain.product) == (product, product)
    shared = parse_product(f"{product}-SHARED")
    assert (shared.model, shared.mig_profile, shared.shared) == (MODELS[model_id], None, True)
    assert shared.raw == f"{product}-SHARED"


@pytest.mark.parametrize(
    ("product", "model_id"), [(p, m) for p, m in PRODUCTS.items() if MODELS[m].mig]
)
def test_parse_mig_product_for_every_profile(product, model_id):
    model = MODELS[model_id]
    for profile in model.profiles:
        # GFD labels carry `+me` as `.me` (label values cannot hold `+`).
        label = f"{product}-MIG-{profile.replace('+', '.')}"
        for suffix, shared in (("", False), ("-SHARED", True)):
            parsed = parse_product(label + suffix)
            assert parsed.model is model
            assert parsed.mig_profile == profile
            assert parsed.shared is shared
            assert parsed.product == product


def test_parse_reference_example():
    parsed = parse_product("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb-SHARED")
    assert parsed.model is MODELS["A100-40GB"]
    assert parsed.mig_profile == "1g.5gb"
    assert parsed.shared is True


def test_parse_unknown_product_reports_none():
    parsed = parse_product("NVIDIA-GeForce-RTX-4090-SHARED")
    assert parsed.model is None
    assert parsed.shared is True
    assert parsed.product == "NVIDIA-GeForce-RTX-4090"
    unknown_mig = parse_product("NVIDIA-RTX-PRO-6000-MIG-1g.24gb.me")
    assert (unknown_mig.model, unknown_mig.mig_profile) == (None, "1g.24gb+me")


def test_parse_keeps_a_profile_the_model_lacks_for_the_caller_to_report():
    parsed = parse_product("NVIDIA-H100-80GB-HBM3-MIG-1g.5gb")
    assert parsed.model is MODELS["H100-80GB"]
    assert parsed.mig_profile == "1g.5gb"
    assert parsed.mig_profile not in parsed.model.profiles


def test_parse_matches_nvml_spelling_without_case():
    assert parse_product("nvidia-a100-pcie-40gb").model is MODELS["A100-40GB"]


def test_gpu_model_repr_is_short():
    assert repr(MODELS["T4"]) == (
        "GpuModel(id='T4', memory_gb=16, mig=False, compute_slices=0, memory_slices=0)"
    )
    assert isinstance(parse_product("Tesla-T4").model, GpuModel)
