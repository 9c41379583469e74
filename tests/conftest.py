"""Shared fixtures: tiny datasets made on the fly and tiny randomly-initialised models."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle")


def make_shape_image(colour: str, shape: str, size: int = 64) -> Image.Image:
    im = Image.new("RGB", (size, size), (250, 250, 250))
    d = ImageDraw.Draw(im)
    box = (size // 4, size // 4, 3 * size // 4, 3 * size // 4)
    (d.rectangle if shape == "square" else d.ellipse)(box, fill=COLOURS[colour])
    return im


def make_coco_dataset(root: Path, per_split=(8, 4, 4)) -> Path:
    """A COCO-layout dataset of coloured shapes: every caption says which colour and shape."""
    (root / "images").mkdir(parents=True)
    combos = [(c, s) for c in COLOURS for s in SHAPES]
    images, anns, names = [], [], []
    for i in range(sum(per_split)):
        colour, shape = combos[i % len(combos)]
        name = f"{i:04d}.png"
        make_shape_image(colour, shape).save(root / "images" / name)
        images.append({"id": i, "file_name": name})
        for j, template in enumerate(["a {c} {s}", "a {c} {s} on white", "one {c} {s}"]):
            anns.append({"id": 10 * i + j, "image_id": i, "caption": template.format(c=colour, s=shape)})
        names.append(name)
    (root / "captions.json").write_text(json.dumps({"images": images, "annotations": anns}))
    a, b, _ = per_split
    for split, part in (("train", names[:a]), ("dev", names[a:a + b]), ("test", names[a + b:])):
        (root / f"{split}.txt").write_text("\n".join(part) + "\n")
    return root


@pytest.fixture(scope="session")
def shapes_dataset(tmp_path_factory) -> Path:
    return make_coco_dataset(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="session")
def shapes_checkpoint(shapes_dataset, feature_cache, tmp_path_factory) -> Path:
    """A tiny captioner trained for seconds on the shapes: it names colours and shapes correctly."""
    from model.train import Trainer
    from tiny import tiny_train_config

    out = tmp_path_factory.mktemp("shapes-run")
    Trainer(tiny_train_config(shapes_dataset, out, feature_cache, epochs=15)).run()
    return out / "best.safetensors"


class LoopbackHTTP:
    """An HTTP server on a free loopback port, answering in a daemon thread: the test sites and stand-in services
    that tests talk to instead of the network outside this machine."""

    def __init__(self, handler):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "LoopbackHTTP":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_processes(master: int) -> list[int]:
    """The model processes (server/service/model_process.py) under a gunicorn master: its workers' children."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"server.service.model_process" not in stat.read_bytes():
                continue
            ppid = int(re.search(r"\nPPid:\t(\d+)", (stat.parent / "status").read_text()).group(1))
            if f"\nPPid:\t{master}\n" in Path(f"/proc/{ppid}/status").read_text():
                found.append(int(stat.parent.name))
        except (OSError, AttributeError):
            continue
    return found


@contextmanager
def running_service(log_dir: Path, threads: int = 8, workers: int = 1, **settings) -> Iterator[str]:
    """`alt-text serve` (gunicorn) on a free loopback port, configured by ALT_TEXT_<SETTING> variables; yields its
    base URL once /readyz answers, and stops it afterwards."""
    port = free_port()
    if "test_allow_loopback" in settings:  # honoured only in testing mode
        settings = {"testing": 1, **settings}
    env = dict(os.environ, **{f"ALT_TEXT_{k.upper()}": str(v) for k, v in settings.items()})
    log = open(log_dir / "gunicorn.log", "w+")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each service its own metrics directory
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--threads",
                             str(threads), "--workers", str(workers)], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail("the service did not become ready:\n" + log.read()[-3000:])
            try:
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or still loading the model (the request waits)
                pass
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(60)  # a stop with requests in flight drains them: up to the graceful timeout (50 s by default)
        log.close()


class RedisServer:
    """A real redis-server on a free loopback port, which a test may stop and start again (same port)."""

    def __init__(self, workdir: Path):
        self.exe = shutil.which("redis-server")
        self.workdir, self.port, self.proc = workdir, free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.workdir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        pytest.fail("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@pytest.fixture
def redis_server(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url
