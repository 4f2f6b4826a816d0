"""Where an image is read from: a local file, or a URL or GDAL virtual path the user gave.

URLs (``http://``, ``https://``, ``s3://``, ``gs://``) and GDAL ``/vsi…`` paths are kept
exactly as written (``pathlib`` folds ``http://`` into ``http:/``) and handed to GDAL as they
are. A network read happens only when the user passes one: a local file that would make GDAL
fetch from the network (a VRT whose sources are URLs or ``/vsicurl/`` paths, a GDAL web-service
description) is refused before GDAL opens it.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

from ..errors import ImageryError

# What a user may give instead of a local path; kept as a string, never through pathlib.
REMOTE_PREFIXES = ("http://", "https://", "s3://", "gs://", "az://", "/vsi")

# A file name inside a local file that makes GDAL read from the network.
NETWORK_SOURCE = re.compile(
    r"/vsi(curl|s3|gs|az|adls|oss|swift|hdfs|webhdfs)|\b(https?|ftps?|s3|gs|az|abfss?|wasbs?)://", re.IGNORECASE
)

# A VRT is a small XML file; one larger than this is not sniffed whole (it is refused).
MAX_XML_BYTES = 16 * 2**20

# VRTs may name other VRTs; deeper nesting than this is refused rather than followed.
MAX_VRT_DEPTH = 8

# Elements of a VRT that name a dataset GDAL opens (followed when local, to VRTs they may be).
VRT_SOURCE_TAGS = ("SourceFilename", "SourceDataset")


class RemotePath(str):
    """A URL or GDAL virtual path, kept character for character as the user wrote it.

    Offers the few ``pathlib.Path`` members sitewatch uses on an image's path (``name``,
    ``stem``, ``suffix``, ``exists``) so it travels where a local path does.
    """

    __slots__ = ()

    @property
    def _pure(self) -> PurePosixPath:
        return PurePosixPath(str(self).split("?", 1)[0].rstrip("/"))

    @property
    def name(self) -> str:
        """The last part of the path, without a query string."""
        return self._pure.name

    @property
    def stem(self) -> str:
        """:attr:`name` without its suffix."""
        return self._pure.stem

    @property
    def suffix(self) -> str:
        """The file extension of :attr:`name`, with its dot."""
        return self._pure.suffix

    def exists(self) -> bool:
        """Always True: whether a remote object exists is GDAL's to find out, on open."""
        return True

    def __fspath__(self) -> str:
        return str(self)


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for a URL or GDAL ``/vsi…`` path (read through GDAL, perhaps from the network)."""
    return isinstance(path, RemotePath) or str(path).startswith(REMOTE_PREFIXES)


def image_path(path: str | os.PathLike[str]) -> Path | RemotePath:
    """``path`` as sitewatch carries an image's location: a ``Path``, or a :class:`RemotePath` left unmangled."""
    if isinstance(path, RemotePath):
        return path
    text = os.fspath(path)
    return RemotePath(text) if text.startswith(REMOTE_PREFIXES) else Path(text)


def _xml_root(path: Path) -> ET.Element | None:
    """The root element of a local XML file (a VRT, a GDAL service description), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(256).lstrip(b"\xef\xbb\xbf \t\r\n")
            if not head.startswith(b"<"):
                return None
            if path.stat().st_size > MAX_XML_BYTES:
                raise ImageryError(f"{path}: an XML raster description over {MAX_XML_BYTES >> 20} MiB; refused unread")
            f.seek(0)
            return ET.fromstring(f.read())
    except (OSError, ET.ParseError):
        return None  # GDAL says what is wrong with it when it opens it


# GDAL Raster Tile Index (GTI) datasets: a vector file of tile locations, opened as a mosaic
# when named so, or with the ``GTI:`` prefix (an XML ``<GDALTileIndexDataset>`` is an XML
# description, checked like one).
GTI_SUFFIXES = (".gti.gpkg", ".gti.fgb", ".gti.parquet")
# Attributes that hold a namespace or schema URL, not anything GDAL opens.
XML_NAMESPACE_ATTRIBUTES = ("schemaLocation", "noNamespaceSchemaLocation")


def _xml_names_network(root: ET.Element) -> str | None:
    """The first network location an XML description's texts or attributes name (namespaces aside), else None."""
    for element in root.iter():
        values = [(element.text or "").strip()] + [
            v for k, v in element.attrib.items() if not k.endswith(XML_NAMESPACE_ATTRIBUTES)
        ]
        for value in values:
            if NETWORK_SOURCE.search(value):
                return value
    return None


def _gti_names_network(path: Path) -> str | None:
    """The first tile location on the network in a GTI vector index, else None (unreadable: GDAL says)."""
    try:
        import pyogrio

        table = pyogrio.read_dataframe(path, read_geometry=False)
    except Exception:  # noqa: BLE001 (any failure to read the index is GDAL's to report on open)
        return None
    for column in table.columns:
        if table[column].dtype.kind not in "biufcmM":  # text, whatever pandas calls its dtype
            for value in table[column].dropna().astype(str):
                if NETWORK_SOURCE.search(value):
                    return value
    return None


def _json_names_network(path: Path) -> str | None:
    """A network href in a local JSON that GDAL would open as a mosaic (STAC ItemCollection: STACIT, STACTA)."""
    import json

    try:
        with open(path, "rb") as f:
            if not f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
                return None
            if path.stat().st_size > MAX_XML_BYTES:
                raise ImageryError(f"{path}: a JSON raster description over {MAX_XML_BYTES >> 20} MiB; refused unread")
            f.seek(0)
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("type") == "Feature":
        return None  # a STAC Item is read by sitewatch itself, through the asset it names (io.stac)
    found = NETWORK_SOURCE.search(json.dumps(doc))
    return found.group(0) if found else None


def _check_not_a_network_mosaic(path: Path) -> None:
    """Refuse a local tile index or catalogue (GTI, STAC ItemCollection) whose tiles are on the network."""
    name = path.name.lower()
    where = _gti_names_network(path) if name.endswith(GTI_SUFFIXES) else _json_names_network(path)
    if where:
        kind = "GDAL tile index (GTI)" if name.endswith(GTI_SUFFIXES) else "catalogue GDAL opens as a mosaic"
        raise ImageryError(
            f"{path}: a {kind} whose tiles are on the network ({where!r}); sitewatch reads the network only from a "
            "URL given on the command line"
        )


def check_no_network_sources(path: str | os.PathLike[str], *, depth: int = 0) -> None:
    """Refuse a local file that would make GDAL read from the network (issue 21).

    A VRT (whatever its name ends in) whose sources are URLs or ``/vsicurl/``-style paths,
    also through VRTs it names; any other XML description naming a network location in
    what GDAL reads (``<GDAL_WMS>``, an MRF's data file, a ``<GDALTileIndexDataset>``;
    namespace and schema URLs aside); a GDAL tile index (``*.gti.gpkg``, ``GTI:``) or a
    STAC ItemCollection whose tiles are on the network: all are refused before GDAL opens
    them. Remote paths the user gave are not checked.

    Raises
    ------
    ImageryError
        Naming the file and the network source it holds.
    """
    if is_remote(path):
        return
    if str(path).upper().startswith("GTI:"):
        path = Path(str(path)[4:])
    path = Path(path)
    root = _xml_root(path)
    if root is None:
        _check_not_a_network_mosaic(path)
        return
    if root.tag != "VRTDataset":
        if _xml_names_network(root):
            raise ImageryError(
                f"{path}: a GDAL <{root.tag.rsplit('}', 1)[-1]}> description that reads from the network; sitewatch "
                "reads the network only from a URL given on the command line"
            )
        return
    if depth >= MAX_VRT_DEPTH:
        raise ImageryError(f"{path}: VRTs nested more than {MAX_VRT_DEPTH} deep; refused rather than followed")
    for parent in list(root.iter()):  # metadata may quote a URL; only what GDAL opens matters
        for child in [c for c in parent if c.tag == "Metadata"]:
            parent.remove(child)
    for element in root.iter():
        name = (element.text or "").strip()
        if NETWORK_SOURCE.search(name) or any(NETWORK_SOURCE.search(v) for v in element.attrib.values()):
            raise ImageryError(
                f"{path}: a VRT whose source {name!r} is on the network; sitewatch reads the network only from a "
                "URL given on the command line (give that URL, or make the VRT point at local files)"
            )
        if element.tag in VRT_SOURCE_TAGS and name:
            source = path.parent / name if element.get("relativeToVRT") == "1" else Path(name)
            if source.is_file() and source.resolve() != path.resolve():
                check_no_network_sources(source, depth=depth + 1)
