"""Static node context from the same OSM extract: POI and land-use counts within a radius.

A point of interest is a node tagged with one of ``amenity``, ``shop``, ``tourism``, ``leisure``,
``office``, ``healthcare``, ``public_transport`` or a ``railway`` station/halt/tram stop (a bare
``highway=bus_stop`` node is not read: modern tagging adds ``public_transport=platform``), or a
closed way / multipolygon so tagged (a shop in a building), placed at the centroid of its
boundary. A land-use feature is a ``landuse=*`` area, a green ``leisure``/``natural`` area, or
water. Each feature has one category; a node's context is, per category, how many features lie
within ``radius`` metres of it (KD-tree on projected coordinates).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.spatial import cKDTree

#: POI categories, in ``node_attr`` order (each prefixed ``poi_``).
POI_CATEGORIES: tuple[str, ...] = (
    "food",
    "shop",
    "education",
    "health",
    "transit",
    "car",
    "tourism",
    "leisure",
    "office",
    "amenity_other",
)
#: Land-use categories, in ``node_attr`` order (each prefixed ``landuse_``).
LANDUSE_CATEGORIES: tuple[str, ...] = (
    "residential",
    "commercial",
    "industrial",
    "green",
    "water",
    "other",
)
POI_NAMES: tuple[str, ...] = tuple(f"poi_{c}" for c in POI_CATEGORIES)
LANDUSE_NAMES: tuple[str, ...] = tuple(f"landuse_{c}" for c in LANDUSE_CATEGORIES)
CONTEXT_NAMES: tuple[str, ...] = POI_NAMES + LANDUSE_NAMES

_P = {c: i for i, c in enumerate(POI_CATEGORIES)}
_L = {c: i for i, c in enumerate(LANDUSE_CATEGORIES)}
_AMENITY = {
    **dict.fromkeys(
        ("restaurant", "cafe", "fast_food", "bar", "pub", "food_court", "ice_cream", "biergarten"),
        _P["food"],
    ),
    **dict.fromkeys(
        ("school", "university", "college", "kindergarten", "library", "language_school"),
        _P["education"],
    ),
    **dict.fromkeys(
        ("hospital", "clinic", "doctors", "dentist", "pharmacy", "nursing_home", "veterinary"),
        _P["health"],
    ),
    **dict.fromkeys(("bus_station", "ferry_terminal", "taxi"), _P["transit"]),
    **dict.fromkeys(
        ("parking", "parking_entrance", "fuel", "charging_station", "car_wash", "car_rental"),
        _P["car"],
    ),
}
_TRANSIT_RAILWAY = frozenset({"station", "halt", "tram_stop", "subway_entrance"})
_LANDUSE = {
    "residential": _L["residential"],
    "commercial": _L["commercial"],
    "retail": _L["commercial"],
    "industrial": _L["industrial"],
    "railway": _L["industrial"],
    "port": _L["industrial"],
    **dict.fromkeys(
        (
            "forest",
            "grass",
            "meadow",
            "recreation_ground",
            "village_green",
            "cemetery",
            "allotments",
            "orchard",
            "vineyard",
            "farmland",
            "greenfield",
            "park",
            "flowerbed",
            "plant_nursery",
        ),
        _L["green"],
    ),
    **dict.fromkeys(("reservoir", "basin", "salt_pond"), _L["water"]),
}
_GREEN_LEISURE = frozenset({"park", "garden", "nature_reserve", "golf_course", "dog_park"})
_GREEN_NATURAL = frozenset({"wood", "scrub", "grassland", "heath", "wetland", "tree_row"})


def classify_poi(tags: Mapping[str, str]) -> int:
    """The POI category index of an object's tags (:data:`POI_CATEGORIES`), ``-1`` if none."""
    amenity = tags.get("amenity")
    if amenity is not None:
        return _AMENITY.get(amenity, _P["amenity_other"])
    if "shop" in tags:
        return _P["shop"]
    if "healthcare" in tags:
        return _P["health"]
    if (
        "public_transport" in tags
        or tags.get("highway") == "bus_stop"
        or tags.get("railway") in _TRANSIT_RAILWAY
    ):
        return _P["transit"]
    if "tourism" in tags:
        return _P["tourism"]
    if "leisure" in tags:
        return _P["leisure"]
    if "office" in tags:
        return _P["office"]
    return -1


def classify_landuse(tags: Mapping[str, str]) -> int:
    """The land-use category index of an area's tags (:data:`LANDUSE_CATEGORIES`), ``-1`` if none."""
    landuse = tags.get("landuse")
    if landuse is not None:
        return _LANDUSE.get(landuse, _L["other"])
    if tags.get("leisure") in _GREEN_LEISURE or tags.get("natural") in _GREEN_NATURAL:
        return _L["green"]
    if tags.get("natural") == "water" or "water" in tags or tags.get("waterway") == "riverbank":
        return _L["water"]
    return -1


def count_within(
    node_xy: np.ndarray, feat_xy: np.ndarray, feat_cat: np.ndarray, n_cat: int, radius: float
) -> np.ndarray:
    """Per node and category, the number of features within ``radius`` (same projected units).

    Args:
        node_xy: ``[N, 2]`` projected node coordinates.
        feat_xy: ``[F, 2]`` projected feature coordinates.
        feat_cat: int ``[F]`` category of each feature, in ``[0, n_cat)``.
        n_cat: number of categories.
        radius: search radius.

    Returns:
        float32 ``[N, n_cat]`` counts.
    """
    n = len(node_xy)
    if len(feat_xy) == 0 or n == 0:
        return np.zeros((n, n_cat), dtype=np.float32)
    # one dual-tree query for all categories: the (node, feature) pairs within the radius as
    # arrays, then one bincount over (node, category)
    pairs = cKDTree(node_xy).sparse_distance_matrix(cKDTree(feat_xy), radius, output_type="ndarray")
    key = pairs["i"].astype(np.int64) * n_cat + np.asarray(feat_cat, dtype=np.int64)[pairs["j"]]
    return np.bincount(key, minlength=n * n_cat).reshape(n, n_cat).astype(np.float32)
