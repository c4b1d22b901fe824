"""A GRIB file that was cut or changed is refused naming it, never read as fewer steps (issue 16)."""

from __future__ import annotations

import shutil

import pytest

from graph_builders import raster
from stgraph.errors import ChecksumError, DataFormatError

pytest.importorskip("cfgrib")

GRIB = "era5-uk-t2m/era5-2mt-2019-03-uk.grib"


@pytest.fixture
def grib_bytes(data_dir) -> bytes:
    return (data_dir / GRIB).read_bytes()


def test_cut_inside_a_message_is_an_error_naming_the_file(grib_bytes, tmp_path):
    path = tmp_path / "cut.grib"
    path.write_bytes(grib_bytes[: len(grib_bytes) // 3 + 720])  # ends inside message 249
    with pytest.raises(DataFormatError, match=r"cut\.grib: truncated.*message 249"):
        raster.from_grid(path)


def test_cut_to_a_third_with_its_checksum_file_is_refused(grib_bytes, data_dir, tmp_path):
    path = tmp_path / "era5.grib"
    path.write_bytes(grib_bytes[: len(grib_bytes) // 3])  # 248 whole messages of 744
    shutil.copy(data_dir / (GRIB + ".md5"), tmp_path / "era5.grib.md5")
    with pytest.raises(ChecksumError, match=r"era5\.grib: md5 .* era5\.grib\.md5"):
        raster.from_grid(path)
    path.write_bytes(grib_bytes)
    assert raster.check_grib(path) == 744
    assert raster.from_grid(path).num_steps == 744


def test_cut_between_messages_without_a_checksum_is_refused(grib_bytes, tmp_path, caplog):
    """The issue's repro: a third of the bytes is 248 whole messages (hourly, from midnight of
    1 March to 07:00 of the 11th); no checksum file beside it. A cut at the end of a day (24 k
    messages) is a valid shorter file and builds."""
    path = tmp_path / "cut.grib"
    path.write_bytes(grib_bytes[: len(grib_bytes) // 3])
    with pytest.raises(DataFormatError, match=r"cut\.grib: .*248 steps .*07:00.*partial=True"):
        raster.from_grid(path)
    with caplog.at_level("WARNING", logger="stgraph.builders"):
        assert raster.from_grid(path, partial=True).num_steps == 248
    assert "8 steps after the last whole day" in caplog.text
    size = len(grib_bytes) // 744
    path.write_bytes(grib_bytes[: 10 * 24 * size])  # ten whole days
    assert raster.from_grid(path).num_steps == 240


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 600, b"GRIB\x00\x0d\x0e\x01"])
def test_empty_or_garbage_grib_is_a_data_format_error(content, tmp_path):
    path = tmp_path / "bad.grib"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=r"bad\.grib"):
        raster.from_grid(path)


def test_drop_rule_on_all_nan_cells(data_dir, caplog):
    import numpy as np
    import xarray as xr

    from graph_builders._inputs import TooManyDroppedError

    ds = xr.open_dataset(data_dir / GRIB, engine="cfgrib", backend_kwargs={"indexpath": ""})
    da = ds["t2m"].isel(time=slice(0, 4)).load()
    da[:, :10, :] = np.nan  # the northern 10 of 33 rows NaN throughout
    with caplog.at_level("WARNING", logger="stgraph.builders"):
        g = raster.from_grid(da)
    assert g.meta["dropped"]["all_nan_cells"] == 10 * da.sizes["longitude"]
    assert "grid cells" in caplog.text and "all_nan_cells" in caplog.text
    with pytest.raises(TooManyDroppedError, match="all_nan_cells"):
        raster.from_grid(da, strict=True)
    assert raster.from_grid(da, strict=True, max_drop_share=0.5).num_nodes == g.num_nodes
