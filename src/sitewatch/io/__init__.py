"""Files in and out: the only layer (with :mod:`sitewatch.aoi`) that touches them.

* :mod:`.raster` - read an image or the part an AOI covers, on its grid; warp onto a grid;
* :mod:`.metadata` - an image's acquisition date and sun position;
* :mod:`.tracks` - track centrelines, and the image around them;
* :mod:`.outputs` - a run's files, staged all or nothing: GeoTIFF/COG, GeoJSON/GPKG, JSON, CSV;
* :mod:`.gis` - RFC 7946 GeoJSON, QGIS styles, GeoParquet, MGRS places and stable ids;
* :mod:`.pictures` - pictures without georeference (PNG, JPEG) on a local grid, masks as PNG.
"""

from .gis import VectorStyle, clean_outline, place_of, read_rgb_preview, spaced_mgrs, stable_id, write_rgb_cog
from .masks import MaskSpec, unusable_on_grid
from .metadata import checked_date, date_from_name, dates_given, image_date, image_sun
from .outputs import (
    add_gpkg_layer,
    block_geotiff,
    check_out_dir,
    check_outputs_free,
    csv_safe,
    geotiff_to_cog,
    read_vectors,
    staged_outputs,
    write_csv,
    write_geotiff,
    write_json,
    write_vectors,
)
from .pictures import LOCAL_CRS, picture_channels, read_picture, read_unreferenced, write_mask_png
from .raster import (
    BandLayout,
    Grid,
    RasterWindow,
    SourceRaster,
    aoi_grid,
    corrected_transform,
    image_grid,
    local_utm_grid,
    measures_in_metres,
    read_aoi_window,
    read_grid,
    read_source,
    read_sources_around,
    read_windows,
    to_local_utm,
    warp_onto_grid,
)
from .sources import RemotePath, check_no_network_sources, image_path, is_remote
from .tracks import read_track_window, read_tracks_file, read_whole_image

__all__ = [
    "read_unreferenced",
    "MaskSpec",
    "unusable_on_grid",
    "checked_date",
    "dates_given",
    "date_from_name",
    "RemotePath",
    "check_no_network_sources",
    "image_path",
    "is_remote",
    "LOCAL_CRS",
    "BandLayout",
    "Grid",
    "aoi_grid",
    "read_grid",
    "RasterWindow",
    "SourceRaster",
    "check_out_dir",
    "check_outputs_free",
    "csv_safe",
    "corrected_transform",
    "image_date",
    "image_sun",
    "local_utm_grid",
    "measures_in_metres",
    "read_aoi_window",
    "picture_channels",
    "read_picture",
    "read_source",
    "read_sources_around",
    "read_windows",
    "image_grid",
    "read_track_window",
    "read_tracks_file",
    "read_whole_image",
    "read_vectors",
    "staged_outputs",
    "to_local_utm",
    "warp_onto_grid",
    "write_csv",
    "block_geotiff",
    "geotiff_to_cog",
    "write_geotiff",
    "write_json",
    "write_mask_png",
    "write_vectors",
    "add_gpkg_layer",
    "VectorStyle",
    "place_of",
    "spaced_mgrs",
    "stable_id",
    "clean_outline",
    "read_rgb_preview",
    "write_rgb_cog",
]
