"""The deployment recipes in scripts/deploy/ agree with the service they run. scripts/check_container.sh (in CI)
builds and runs the container; these checks are what can be read from the files alone: a setting the service does
not know, a compose file that points at a missing Containerfile, a service that would run as root."""
from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import yaml

from server.service.config import Config

DEPLOY = Path(__file__).resolve().parents[1] / "scripts" / "deploy"
SETTINGS = {f"ALT_TEXT_{f.name.upper()}" for f in fields(Config)}


def test_the_compose_file_builds_the_containerfile_and_shares_redis():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    svc = compose["services"]["alt-text"]
    assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == DEPLOY / "Containerfile"
    env = svc["environment"]
    assert set(env) <= SETTINGS, set(env) - SETTINGS
    redis_host = re.match(r"redis://([^:/]+)", env["ALT_TEXT_REDIS_URL"]).group(1)
    assert redis_host in compose["services"] and redis_host in svc["depends_on"]
    assert svc["shm_size"] and svc["stop_grace_period"]
    gpu = yaml.safe_load((DEPLOY / "compose.gpu.yaml").read_text())
    assert gpu["services"]["alt-text"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_the_container_runs_the_service_as_a_user_with_a_health_check():
    text = (DEPLOY / "Containerfile").read_text()
    final = text[text.rindex("\nFROM "):]  # the image users run, not the build stage
    assert re.search(r"^USER alt-text$", final, re.M)
    assert "tesseract-ocr-eng" in final
    assert re.search(r"^HEALTHCHECK .*\n?.*/readyz", final, re.M)
    assert re.search(r'^CMD \["alt-text", "serve", "--host", "0.0.0.0"', final, re.M)
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M)
    for item in " ".join(copied).split():  # what the wheel is built from exists and is not ignored
        assert (DEPLOY.parents[1] / item).exists(), item
    ignored = (DEPLOY.parents[1] / ".containerignore").read_text().split()
    assert not {"model", "server", "pyproject.toml", "LICENSE", "README.md"} & set(ignored)


def test_the_systemd_unit_runs_the_service_unprivileged_and_drains_on_stop():
    unit = (DEPLOY / "alt-text.service").read_text()
    assert re.search(r"^ExecStart=\S+/alt-text serve ", unit, re.M)
    assert re.search(r"^User=alt-text$", unit, re.M) and re.search(r"^KillSignal=SIGTERM$", unit, re.M)
    for name in re.findall(r"^#? ?Environment=(ALT_TEXT_[A-Z_]+)=", unit, re.M):
        assert name in SETTINGS, name
