"""scripts/gather_chart_set.py: one chart of every type from each family whose plotting library is installed.

None of the libraries is a dependency of the project, so each family's test skips when its library (or its
command-line tool: Graphviz's dot, Chromium) is missing. Maps are drawn on a tiny made-up TopoJSON, so nothing is
fetched."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("gather_chart_set", REPO / "scripts" / "gather_chart_set.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def square(x0, x1, y0, y1):
    # clockwise with north up: the exterior ring of a small polygon for d3-geo (Vega, plotly)
    return [[x0, y0], [x0, y1], [x1, y1], [x1, y0], [x0, y0]]


def fake_topology(folder: Path, files) -> Path:
    """Every file the script reads, each the same tiny topology: three countries and three US states."""
    countries = {"FRA": (0, 6, 43, 49), "DEU": (7, 13, 48, 54), "ITA": (10, 16, 38, 44)}
    states = {"CA": (-124, -116, 33, 41), "TX": (-106, -95, 27, 35), "NY": (-79, -73, 41, 45)}
    arcs, countries_geo, states_geo = [], [], []
    for target, shapes, extra in ((countries_geo, countries, {}), (states_geo, states, {"gu": "USA"})):
        for name, (x0, x1, y0, y1) in shapes.items():
            arcs.append(square(x0, x1, y0, y1))
            target.append({"type": "Polygon", "id": name, "arcs": [[len(arcs) - 1]],
                           "properties": {"ct": [(x0 + x1) / 2, (y0 + y1) / 2], **extra}})
    land = [{"type": "Polygon", "arcs": g["arcs"]} for g in countries_geo + states_geo]
    coast = [{"type": "LineString", "arcs": g["arcs"][0]} for g in countries_geo + states_geo]
    topo = {"type": "Topology", "arcs": arcs, "objects": {
        "countries": {"type": "GeometryCollection", "geometries": countries_geo},
        "subunits": {"type": "GeometryCollection", "geometries": states_geo},
        "land": {"type": "GeometryCollection", "geometries": land},
        "coastlines": {"type": "GeometryCollection", "geometries": coast},
        "ocean": {"type": "GeometryCollection", "geometries": []},
        "lakes": {"type": "GeometryCollection", "geometries": []},
        "rivers": {"type": "GeometryCollection", "geometries": []}}}
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / f).write_text(json.dumps(topo))
    return folder


def need(family: str) -> None:
    """Skip unless what the family draws with is installed."""
    modules = {"matplotlib": ["matplotlib"], "seaborn": ["matplotlib", "seaborn", "pandas"],
               "plotly": ["plotly", "kaleido", "pandas"], "altair": ["altair", "vl_convert", "pandas"]}
    for mod in modules.get(family, []):
        pytest.importorskip(mod)
    chromium = any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))
    if family == "graphviz" and not shutil.which("dot"):
        pytest.skip("Graphviz's dot is not installed")
    if family == "html" and not chromium:
        pytest.skip("Chromium is not installed")
    if family == "plotly":
        import kaleido
        if hasattr(kaleido, "calc_fig_sync") and not chromium:
            pytest.skip("kaleido 1.x needs a Chrome or Chromium")


@pytest.mark.parametrize("family", ["matplotlib", "seaborn", "plotly", "altair", "graphviz", "html"])
def test_one_chart_of_each_type(family, tmp_path):
    need(family)
    g = load_script()
    topo = fake_topology(tmp_path / "topo", g.TOPOJSON_FILES)
    out = tmp_path / "charts"
    assert g.main(["--out", str(out), "--per-type", "1", "--families", family, "--topojson", str(topo),
                   "--jobs", "1"]) == 0
    images = json.loads((out / "manifest.json").read_text())["images"]
    assert sorted(e["label"] for e in images) == sorted(g.FAMILIES[family][0])
    for e in images:
        assert e["family"] == family and e["licence"].startswith("generated (our own data)")
        assert e["library"] and e["version"] and e["style"] and e["source"]
        im = Image.open(out / e["file"])
        im.load()
        assert im.mode == "RGB" and (im.width, im.height) == (e["width"], e["height"])
        assert g.MIN_SIDE <= max(im.size) <= g.MAX_SIDE
        lo, hi = im.convert("L").getextrema()
        assert hi - lo > 16, f"{e['file']} is one colour"


def test_a_second_run_keeps_the_other_families(tmp_path):
    pytest.importorskip("matplotlib")
    g = load_script()
    out = tmp_path / "charts"
    (out).mkdir()
    other = {"file": "images/html/table_0000.png", "family": "html", "label": "table"}
    (out / "manifest.json").write_text(json.dumps({"images": [other]}))
    assert g.main(["--out", str(out), "--per-type", "1", "--families", "matplotlib", "--types", "bar,pie",
                   "--jobs", "1"]) == 0
    images = json.loads((out / "manifest.json").read_text())["images"]
    assert other in images
    assert sorted(e["label"] for e in images if e["family"] == "matplotlib") == ["bar", "pie"]


def test_user_errors_are_messages_not_tracebacks(tmp_path, monkeypatch):
    g = load_script()
    with pytest.raises(SystemExit, match="unknown family: nope"):
        g.main(["--out", str(tmp_path), "--families", "nope"])
    with pytest.raises(SystemExit, match="unknown chart type: donut"):
        g.main(["--out", str(tmp_path), "--families", "graphviz", "--types", "donut"])
    real_which = shutil.which
    monkeypatch.setattr(g.shutil, "which", lambda name: None if name == "dot" else real_which(name))
    with pytest.raises(SystemExit, match="apt-get install graphviz"):
        g.main(["--out", str(tmp_path), "--families", "graphviz"])


def test_made_up_data_without_any_plotting_library(tmp_path):
    """The specs every family draws from: flowcharts are connected, maps read TopoJSON, all is seeded."""
    import random

    import numpy as np
    g = load_script()
    for i in range(30):
        r, nr = random.Random(i), np.random.default_rng(i)
        flow = g.make_spec("flow", r, nr, None)
        nodes, edges = flow["nodes"], flow["edges"]
        assert all(0 <= a < len(nodes) and 0 <= b < len(nodes) for a, b, _, _ in edges)
        reached = {0}
        for _ in nodes:
            reached |= {b for a, b, _, _ in edges if a in reached}
        assert reached == set(range(len(nodes)))
        assert any(n["kind"] == "decision" for n in nodes)
    topo = fake_topology(tmp_path, g.TOPOJSON_FILES)
    feats = g.topo_features(json.loads((topo / "world_110m.json").read_text()), "countries")
    assert [f[0] for f in feats] == ["FRA", "DEU", "ITA"]
    assert feats[0][2][0][0][:2] == [(0, 43), (0, 49)]
    spec = g.make_spec("map", random.Random(1), np.random.default_rng(1), topo)
    assert len(spec["ids"]) == len(spec["values"]) > 0
    for label in ("bar", "line", "pie", "scatter", "histogram", "area", "table"):
        a = g.make_spec(label, random.Random(7), np.random.default_rng(7), None)
        b = g.make_spec(label, random.Random(7), np.random.default_rng(7), None)
        assert json.dumps(a, default=str) == json.dumps(b, default=str)
