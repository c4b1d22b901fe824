"""OSM tag semantics: network filters, road classes, speed limits, lanes, one-way rules.

The network filters are the Overpass filters of OSMnx (``osmnx._overpass._get_network_filter``,
OSMnx 2.x) evaluated in Python on a way's tags, so a local file and an Overpass download select the
same ways. As in Overpass, ``!~`` is an unanchored, case-sensitive regular-expression match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from stgraph.errors import ConfigError

#: Road classes in a fixed order: the ``road_class`` code of an edge is the index in this list, so
#: codes mean the same in every city. Highway values not listed get the code of ``"other"``.
ROAD_CLASSES: tuple[str, ...] = (
    "motorway",
    "motorway_link",
    "trunk",
    "trunk_link",
    "primary",
    "primary_link",
    "secondary",
    "secondary_link",
    "tertiary",
    "tertiary_link",
    "unclassified",
    "residential",
    "living_street",
    "service",
    "road",
    "busway",
    "track",
    "pedestrian",
    "footway",
    "cycleway",
    "path",
    "steps",
    "bridleway",
    "corridor",
    "other",
)
ROAD_CLASS_CODE: dict[str, int] = {name: i for i, name in enumerate(ROAD_CLASSES)}
OTHER_CLASS = ROAD_CLASS_CODE["other"]

#: Fallback speed (km/h) per road class, used when a way has no parseable ``maxspeed`` and no way
#: of the same class in the same extract has one (see ``speed_fallback`` in ``road_graph``).
#: Typical urban limits in Europe; a motorway/trunk value for the links one step down.
DEFAULT_SPEED_KPH: dict[str, float] = {
    "motorway": 100.0,
    "motorway_link": 60.0,
    "trunk": 80.0,
    "trunk_link": 50.0,
    "primary": 60.0,
    "primary_link": 50.0,
    "secondary": 50.0,
    "secondary_link": 40.0,
    "tertiary": 50.0,
    "tertiary_link": 40.0,
    "unclassified": 40.0,
    "residential": 30.0,
    "living_street": 10.0,
    "service": 20.0,
    "road": 40.0,
    "busway": 50.0,
    "track": 20.0,
    "pedestrian": 5.0,
    "footway": 5.0,
    "cycleway": 20.0,
    "path": 5.0,
    "steps": 3.0,
    "bridleway": 10.0,
    "corridor": 5.0,
    "other": 30.0,
}

#: Implicit limits written as ``XX:<zone>`` (e.g. ``FI:urban``, ``DE:rural``), in km/h. Country rules
#: differ slightly; these are the common values and are counted as ``maxspeed_implicit``.
IMPLICIT_SPEED_KPH: dict[str, float] = {
    "urban": 50.0,
    "rural": 80.0,
    "motorway": 120.0,
    "trunk": 100.0,
    "living_street": 20.0,
    "walk": 7.0,
    "bicycle_road": 30.0,
    "school": 30.0,
    "pedestrian_zone": 7.0,
}

_HIGHWAY_DEAD = (
    "abandoned|construction|no|planned|platform|proposed|raceway|razed|rest_area|services"
)
_PRIVATE = ("access", "private")

#: Per network type: the ``(key, regex)`` pairs a way must NOT match (besides having ``highway``).
NETWORK_EXCLUDES: dict[str, tuple[tuple[str, str], ...]] = {
    "drive": (
        ("area", "yes"),
        _PRIVATE,
        (
            "highway",
            "abandoned|bridleway|bus_guideway|construction|corridor|cycleway|elevator|escalator|"
            "footway|no|path|pedestrian|planned|platform|proposed|raceway|razed|rest_area|service|"
            "services|steps|track",
        ),
        ("motor_vehicle", "no"),
        ("motorcar", "no"),
        ("service", "alley|driveway|emergency_access|parking|parking_aisle|private"),
    ),
    "drive_service": (
        ("area", "yes"),
        _PRIVATE,
        (
            "highway",
            "abandoned|bridleway|bus_guideway|construction|corridor|cycleway|elevator|escalator|"
            "footway|no|path|pedestrian|planned|platform|proposed|raceway|razed|rest_area|services|"
            "steps|track",
        ),
        ("motor_vehicle", "no"),
        ("motorcar", "no"),
        ("service", "emergency_access|parking|parking_aisle|private"),
    ),
    "walk": (
        ("area", "yes"),
        _PRIVATE,
        (
            "highway",
            "abandoned|bus_guideway|construction|cycleway|motor|no|planned|platform|proposed|"
            "raceway|razed|rest_area|services",
        ),
        ("foot", "no"),
        ("service", "private"),
        ("sidewalk", "separate"),
        ("sidewalk:both", "separate"),
        ("sidewalk:left", "separate"),
        ("sidewalk:right", "separate"),
    ),
    "bike": (
        ("area", "yes"),
        _PRIVATE,
        (
            "highway",
            "abandoned|bus_guideway|construction|corridor|elevator|escalator|footway|motor|no|"
            "planned|platform|proposed|raceway|razed|rest_area|services|steps",
        ),
        ("bicycle", "no"),
        ("service", "private"),
    ),
    "all_public": (
        ("area", "yes"),
        _PRIVATE,
        ("highway", _HIGHWAY_DEAD),
        ("service", "private"),
    ),
    "all": (("area", "yes"), ("highway", _HIGHWAY_DEAD)),
}
NETWORK_TYPES: tuple[str, ...] = tuple(NETWORK_EXCLUDES)
#: Network types in which every way is walkable both ways (OSMnx ``bidirectional_network_types``).
BIDIRECTIONAL_NETWORKS: frozenset[str] = frozenset({"walk"})

#: The way tags a road graph reads (everything the filters, one-way rules and attributes need).
WAY_TAGS: tuple[str, ...] = tuple(
    sorted(
        {k for ex in NETWORK_EXCLUDES.values() for k, _ in ex}
        | {
            "highway",
            "oneway",
            "junction",
            "maxspeed",
            "maxspeed:forward",
            "maxspeed:backward",
            "lanes",
            "lanes:forward",
            "lanes:backward",
        }
    )
)

_COMPILED = {
    net: tuple((k, re.compile(rx)) for k, rx in ex) for net, ex in NETWORK_EXCLUDES.items()
}

#: ``oneway`` values meaning one-way, and those meaning against the node order (OSMnx's sets).
ONEWAY_VALUES = frozenset({"yes", "true", "1", "-1", "reverse", "T", "F"})
REVERSED_VALUES = frozenset({"-1", "reverse", "T"})
#: ``junction`` values that imply one-way travel (``circular`` is the non-roundabout ring).
ONEWAY_JUNCTIONS = frozenset({"roundabout", "circular"})


def check_network(network: str) -> str:
    """Return ``network`` if it is a known network type, else raise a ``ConfigError``."""
    if network not in _COMPILED:
        raise ConfigError(f"network={network!r}: expected one of {', '.join(NETWORK_TYPES)}")
    return network


def in_network(tags: Mapping[str, str], network: str) -> bool:
    """Whether a way with ``tags`` belongs to ``network`` (the OSMnx/Overpass filter)."""
    if "highway" not in tags:
        return False
    for key, rx in _COMPILED[network]:
        value = tags.get(key)
        if value is not None and rx.search(value):
            return False
    return True


def oneway_direction(tags: Mapping[str, str], *, bidirectional: bool) -> int:
    """``0`` two-way, ``1`` one-way along the node order, ``-1`` one-way against it.

    The OSMnx rules: ``oneway`` in :data:`ONEWAY_VALUES` (``-1``, ``reverse`` and ``T`` reversed), or
    a roundabout/circular junction; nothing is one-way in a bidirectional (walking) network.
    """
    if bidirectional:
        return 0
    value = tags.get("oneway")
    if value in ONEWAY_VALUES:
        return -1 if value in REVERSED_VALUES else 1
    if tags.get("junction") in ONEWAY_JUNCTIONS:
        return 1
    return 0


def road_class(highway: str | None) -> int:
    """The fixed code of a ``highway`` value (:data:`ROAD_CLASSES`); unknown values are ``other``."""
    return ROAD_CLASS_CODE.get(highway or "", OTHER_CLASS)


_SPEED_RX = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*$", re.IGNORECASE)
_ZONE_RX = re.compile(r"^[A-Za-z]{2}(?:-[A-Za-z0-9]+)?:(?:zone:?)?(\w+)$")
_UNIT_KPH = {None: 1.0, "km/h": 1.0, "kmh": 1.0, "kph": 1.0, "mph": 1.609344, "knots": 1.852}


def parse_speed(value: str | None) -> tuple[float | None, str]:
    """Parse an OSM ``maxspeed`` value into km/h.

    Returns ``(speed, how)`` with ``how`` one of ``"tagged"`` (a number, with ``km/h``, ``mph`` or
    ``knots``; ``a;b`` lists give their mean, as OSMnx does), ``"implicit"`` (``XX:urban`` and the
    zones of :data:`IMPLICIT_SPEED_KPH`, ``XX:zone30``), ``"missing"`` or ``"unparseable"``
    (``none``, ``signals``, ``variable``, garbage) with speed ``None``.
    """
    if value is None or not value.strip():
        return None, "missing"
    parts = [p for p in re.split(r"[;|]", value) if p.strip()]
    speeds: list[float] = []
    how = "tagged"
    for part in parts:
        m = _SPEED_RX.match(part)
        if m:
            unit = m.group(2).lower() if m.group(2) else None
            speeds.append(float(m.group(1).replace(",", ".")) * _UNIT_KPH[unit])
            continue
        z = _ZONE_RX.match(part.strip())
        if z:
            zone = z.group(1).lower()
            if zone.isdigit():
                speeds.append(float(zone))
                how = "implicit"
                continue
            if zone in IMPLICIT_SPEED_KPH:
                speeds.append(IMPLICIT_SPEED_KPH[zone])
                how = "implicit"
                continue
        if part.strip().lower() == "walk":
            speeds.append(IMPLICIT_SPEED_KPH["walk"])
            how = "implicit"
            continue
        return None, "unparseable"
    speeds = [s for s in speeds if s > 0]
    if not speeds:
        return None, "unparseable"
    return sum(speeds) / len(speeds), how


def parse_lanes(value: str | None) -> float | None:
    """Parse an OSM ``lanes`` value (``"2"``, ``"2;3"`` → mean); ``None`` when absent or invalid."""
    if value is None:
        return None
    vals = []
    for part in re.split(r"[;|]", value):
        try:
            v = float(part.strip().replace(",", "."))
        except ValueError:
            return None
        if v > 0:
            vals.append(v)
    return sum(vals) / len(vals) if vals else None
