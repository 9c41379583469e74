"""The shared retry vectors (tests/vectors/retry.json): when a refused POST /v1/alt-text is sent again, and after
how long. Checked here against the Python client's own urllib3 Retry (as server/client.py ServiceClient mounts it),
and by extension/tests/retry.test.mjs (node --test) against the extension's retryWait, so the two clients cannot
drift apart."""
import json
from pathlib import Path

import pytest
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.response import HTTPResponse
from urllib3.util import retry as retry_module

from server import client

VECTORS = json.loads((Path(__file__).parent / "vectors" / "retry.json").read_text(encoding="utf-8"))
CASES = VECTORS["cases"]
BASE = "http://alt-text.test"


def _retry():
    """The Retry that ServiceClient uses for describing requests."""
    return client.ServiceClient(BASE).session.get_adapter(BASE + "/v1/alt-text").max_retries


def test_the_policy_is_the_clients():
    policy, retry = VECTORS["policy"], _retry()
    assert set(policy["statuses"]) == set(client.RETRY_STATUSES) == set(retry.status_forcelist)
    assert policy["retries"] == client.RETRIES == retry.total == retry.status
    assert policy["max_wait_s"] == client.MAX_RETRY_WAIT == retry.retry_after_max
    assert policy["backoff_s"] == retry.backoff_factor
    assert retry.respect_retry_after_header and retry.connect == retry.read == 0


def _decision(case, monkeypatch) -> tuple[bool, float | None]:
    """What urllib3 does with this refused answer after case["failures"] - 1 earlier ones like it: (sends again?,
    seconds slept first), the way HTTPConnectionPool.urlopen asks it."""
    slept = []
    monkeypatch.setattr(retry_module.time, "time", lambda: VECTORS["now"])
    monkeypatch.setattr(retry_module.time, "sleep", slept.append)
    headers = {} if case["retry_after"] is None else {"Retry-After": case["retry_after"]}
    response = HTTPResponse(body=b"", headers=headers, status=case["status"], preload_content=False)
    retry = _retry()
    for _ in range(case["failures"]):
        if not retry.is_retry("POST", response.status, bool(response.headers.get("Retry-After"))):
            return False, None
        try:
            retry = retry.increment("POST", "/v1/alt-text", response=response)
        except MaxRetryError:
            return False, None
        slept.clear()
        try:
            retry.sleep(response)
        except InvalidHeader:  # requests raises it as a RequestException: ServiceError, given up
            return False, None
    return True, sum(slept)


@pytest.mark.parametrize("case", CASES, ids=[c["why"] for c in CASES])
def test_the_python_client_agrees_with_the_shared_vectors(case, monkeypatch):
    retry, wait = _decision(case, monkeypatch)
    assert (retry, wait) == (case["retry"], case["wait_s"])


def test_the_extension_runs_the_same_vectors():
    text = (Path(__file__).parents[1] / "extension" / "tests" / "retry.test.mjs").read_text()
    assert "tests/vectors/retry.json" in text
