"""Persistence: clear errors for missing, truncated, foreign, newer and tampered files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import lens_odesteer as lo
from lens_odesteer.errors import FileFormatError, InvalidParameterError, NotFittedError
from lens_odesteer.io import SCHEMA_VERSION, read_header


def _fitted() -> lo.ODESteer:
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(30, 6, generator=gen) + 1
    neg = torch.randn(30, 6, generator=gen) - 1
    return lo.ODESteer(lo.sketch_barrier(n_components=64)).fit(pos, neg)


def _rewrite_header(path: Path, edit) -> Path:
    """Rewrite the JSON metadata of a safetensors file in place (tensors kept)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["lens_odesteer"])
    edit(meta)
    header["__metadata__"]["lens_odesteer"] = json.dumps(meta)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    return path


@pytest.fixture
def saved(tmp_path) -> Path:
    return _fitted().save(tmp_path / "steerer", provenance={"model_name": "m", "layer": 2})


def test_save_appends_suffix_and_records_header(saved) -> None:
    assert saved.suffix == ".safetensors"
    header = read_header(saved)
    assert header["class"] == "ODESteer" and header["d_model"] == 6
    assert header["dtype"] == "float32" and header["schema_version"] == SCHEMA_VERSION == 2
    assert header["provenance"] == {"model_name": "m", "layer": 2}
    assert header["library_version"] == lo.__version__


def test_missing_file(tmp_path) -> None:
    with pytest.raises(FileFormatError, match="No steerer file"):
        lo.load_steerer(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("keep", [0, 5, 8, 40, -100, -1])
def test_truncated_file(saved, keep) -> None:
    raw = saved.read_bytes()
    saved.write_bytes(raw[:keep])
    with pytest.raises(FileFormatError):
        lo.load_steerer(saved)


def test_not_a_safetensors_file(tmp_path) -> None:
    path = tmp_path / "x.safetensors"
    path.write_text("this is not a steerer")
    with pytest.raises(FileFormatError, match="not a readable safetensors file"):
        lo.load_steerer(path)


def test_foreign_safetensors_file(tmp_path) -> None:
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(FileFormatError, match="not a lens_odesteer steerer"):
        lo.load_steerer(path)


def test_newer_schema_version(saved) -> None:
    _rewrite_header(saved, lambda m: m.update(schema_version=99))
    with pytest.raises(FileFormatError, match="newer than this lens_odesteer"):
        lo.load_steerer(saved)


@pytest.mark.parametrize("field", ["class", "provenance", "component"])
def test_missing_header_field(saved, field) -> None:
    _rewrite_header(saved, lambda m: m.pop(field))
    with pytest.raises(FileFormatError, match="missing fields"):
        lo.load_steerer(saved)


def test_extra_header_field(saved) -> None:
    _rewrite_header(saved, lambda m: m.update(surprise=1))
    with pytest.raises(FileFormatError, match="unexpected fields"):
        lo.load_steerer(saved)


def test_unknown_class_is_never_imported(saved) -> None:
    def edit(m):
        m["component"]["class"] = "os.system"

    _rewrite_header(saved, edit)
    with pytest.raises(FileFormatError, match=r"Unknown component class 'os\.system'"):
        lo.load_steerer(saved)


def test_parameter_set_mismatch(saved) -> None:
    def edit(m):
        m["component"]["params"]["warp_drive"] = True

    _rewrite_header(saved, edit)
    with pytest.raises(FileFormatError, match="do not match this version"):
        lo.load_steerer(saved)


def test_tensor_shape_tampering_is_caught_at_load(tmp_path) -> None:
    steerer = lo.CAA().fit(torch.randn(5, 4), torch.randn(5, 4))
    path = steerer.save(tmp_path / "caa")
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["lens_odesteer"])
    bad = tmp_path / "bad.safetensors"
    save_file(
        {"direction_": torch.zeros(7)},
        str(bad),
        metadata={"lens_odesteer": json.dumps(meta)},
    )
    with pytest.raises(FileFormatError):
        lo.load_steerer(bad)


def test_header_is_not_json(saved) -> None:
    raw = saved.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"]["lens_odesteer"] = "{not json"
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    saved.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    with pytest.raises(FileFormatError, match="not valid JSON"):
        lo.load_steerer(saved)


def test_unfitted_steerer_cannot_be_saved(tmp_path) -> None:
    with pytest.raises(NotFittedError):
        lo.ODESteer().save(tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_leaves_no_partial_file(tmp_path) -> None:
    steerer = _fitted()
    with pytest.raises(TypeError, match="JSON-serialisable"):
        steerer.save(tmp_path / "x", provenance={"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_atomically(tmp_path) -> None:
    a = lo.CAA().fit(torch.ones(2, 3), torch.zeros(2, 3))
    b = lo.CAA().fit(torch.zeros(2, 3), torch.ones(2, 3))
    path = a.save(tmp_path / "s")
    b.save(path)
    loaded = lo.load_steerer(path)
    assert torch.equal(loaded.steer(torch.zeros(1, 3), 1.0), -torch.ones(1, 3))
    assert [p.name for p in tmp_path.iterdir()] == ["s.safetensors"]


def test_load_onto_device_and_custom_barrier_round_trip(tmp_path) -> None:
    gen = torch.Generator().manual_seed(1)
    pos, neg = torch.randn(20, 5, generator=gen) + 1, torch.randn(20, 5, generator=gen) - 1
    s = lo.ODESteer(lo.barriers.MLPValueBarrier(hidden=4, max_iter=20), steps=3)
    s.fit(pos, neg)
    loaded = lo.load_steerer(s.save(tmp_path / "v"), device="cpu")
    assert isinstance(loaded, lo.ODESteer)
    assert isinstance(loaded.barrier, lo.barriers.MLPValueBarrier)
    assert torch.equal(loaded.steer(neg, 0.7), s.steer(neg, 0.7))


def test_unknown_config_is_never_built(tmp_path) -> None:
    gen = torch.Generator().manual_seed(2)
    s = lo.ODESteer(lo.sketch_barrier(n_components=32), stop=lo.steerers.BarrierMargin(0.0))
    path = s.fit(torch.randn(10, 4, generator=gen) + 1, torch.randn(10, 4, generator=gen)).save(
        tmp_path / "s"
    )

    def edit(m):
        m["component"]["params"]["stop"]["config"] = "os.system"

    _rewrite_header(path, edit)
    with pytest.raises(FileFormatError, match=r"Unknown config 'os\.system'"):
        lo.load_steerer(path)


def test_save_refuses_what_load_would_refuse_and_keeps_the_old_file(tmp_path) -> None:
    """One set of rules: a parameter beyond the loader's bounds is refused at save time."""
    steerer = _fitted()
    path = steerer.save(tmp_path / "s")
    before = path.read_bytes()
    steerer.set_params(steps=200_000)  # refit-free: the fitted state is kept
    with pytest.raises(InvalidParameterError, match=r"`steps` of ODESteer is 200000, outside"):
        steerer.save(path)
    assert path.read_bytes() == before and lo.load_steerer(path).steps == 10


def test_header_bounds_are_checked_before_tensors_are_read(saved, monkeypatch) -> None:
    import lens_odesteer.io as lo_io

    def no_tensors(*args, **kwargs):
        raise AssertionError("tensors were read before the header was checked")

    monkeypatch.setattr(lo_io, "safe_open", no_tensors)
    _rewrite_header(saved, lambda meta: meta["component"]["params"].update(steps=10**8))
    with pytest.raises(FileFormatError, match="outside the accepted range"):
        lo.load_steerer(saved)


def test_missing_file_names_the_suffixed_path_too(tmp_path) -> None:
    with pytest.raises(FileFormatError, match=r"nope\.safetensors.*appends '\.safetensors'"):
        lo.load_steerer(tmp_path / "nope")
