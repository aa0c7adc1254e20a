"""Every code sample of the buyer docs runs against the Venice sandbox over real HTTP.

The samples are the files under ``web/templates/docs/samples/`` that the docs and the key
page render; here they are filled in with a key bought from a live shop and run as the
buyer would: Python with the ``openai`` SDK, the cURL lines with curl, and Node with the
``openai`` npm package that ``make node`` installs into ``tests/node``.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cheaptokens.sandbox import catalogue
from cheaptokens.web.pages import PLACEHOLDER_KEY, SAMPLES_DIR, sample
from support.live import Live, live_shop

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with live_shop(tmp_path_factory.mktemp("docs"), now=NOON) as shop:
        yield shop


@pytest.fixture(scope="module")
def bought(live: Live) -> dict[str, Any]:
    order = live.buy(500)
    assert order["final"]["status"] == "fulfilled", order["final"]
    return order


def _fill(name: str, live: Live, key: str, **extra: str) -> str:
    text = sample(name, api_key=key, base_url=live.venice_url, shop_url=live.url)
    for placeholder, value in extra.items():
        text = text.replace(placeholder, value)
    return text


def _json_values(text: str) -> list[Any]:
    """The JSON documents curl printed back to back (its answers end without a newline)."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        value, i = decoder.raw_decode(text, i)
        out.append(value)
    return out


def _run(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, **kw)


def test_every_sample_names_a_catalogue_model() -> None:
    known = set(catalogue.models_by_id())
    for path in SAMPLES_DIR.iterdir():
        text = path.read_text()
        for token in ("llama-3.3-70b", "deepseek-v3.2", "claude-sonnet-4-5"):
            if token in text:
                assert token in known
        assert "sk-" not in text  # no OpenAI-looking keys; placeholders only


@pytest.mark.parametrize("name", ["python_chat.py", "python_stream.py", "python_errors.py"])
def test_python_samples_run(name: str, live: Live, bought: dict[str, Any]) -> None:
    code = _fill(name, live, bought["final"]["key"]["api_key"])
    done = _run([sys.executable, "-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert "not valid" not in done.stdout and "Out of credit" not in done.stdout


def test_python_error_sample_explains_an_unknown_key(live: Live) -> None:
    code = _fill("python_errors.py", live, PLACEHOLDER_KEY)
    done = _run([sys.executable, "-c", code])
    assert done.returncode == 0, done.stderr
    assert "The key is not valid any more" in done.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_chat_and_models(live: Live, bought: dict[str, Any]) -> None:
    key = bought["final"]["key"]["api_key"]
    chat = _run(["bash", "-c", _fill("curl_chat.sh", live, key)])
    assert chat.returncode == 0, chat.stderr
    assert json.loads(chat.stdout)["choices"][0]["message"]["content"]
    stream = _run(["bash", "-c", _fill("curl_stream.sh", live, key)])
    assert stream.returncode == 0, stream.stderr
    assert stream.stdout.count("data: ") > 2 and "data: [DONE]" in stream.stdout
    models = _run(["bash", "-c", _fill("curl_models.sh", live, key)])
    ids = {m["id"] for m in json.loads(models.stdout)["data"]}
    assert {"llama-3.3-70b", "deepseek-v3.2", "claude-sonnet-4-5"} <= ids


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_agent_api_samples(live: Live, bought: dict[str, Any]) -> None:
    agent = _run(["bash", "-e", "-c", _fill("curl_agent.sh", live, "")])
    assert agent.returncode == 0, agent.stderr
    last = _json_values(agent.stdout)[-1]
    assert last["checkout_url"] and last["order_token"] and last["status"] == "awaiting_payment"
    script = _fill(
        "curl_order.sh",
        live,
        "",
        __ORDER_ID__=bought["order_id"],
        __ORDER_TOKEN__=bought["order_token"],
    )
    lines = _run(["bash", "-e", "-c", script])
    assert lines.returncode == 0, lines.stderr
    outputs = _json_values(lines.stdout)
    assert outputs[0]["status"] == "fulfilled"
    assert outputs[1]["credit_cents"] == 500
    assert outputs[2]["key"]["api_key"] is None  # received: the shop forgot it


NODE_DIR = pathlib.Path(__file__).resolve().parents[1] / "node"


@pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_DIR / "node_modules" / "openai").exists(),
    reason="node or the openai npm package is not installed (make node)",
)
@pytest.mark.parametrize("name", ["node_chat.mjs", "node_stream.mjs"])
def test_node_samples_run(name: str, live: Live, bought: dict[str, Any]) -> None:
    key = bought["final"]["key"]["api_key"]
    # ES modules find packages next to the importing file: run it from tests/node.
    path = NODE_DIR / f"run-{name}"
    path.write_text(_fill(name, live, key))
    try:
        done = _run(["node", str(path)])
    finally:
        path.unlink()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "the sample printed no answer"


def _order_sample(name: str, live: Live, order: dict[str, Any]) -> str:
    return _fill(
        name, live, "", __ORDER_ID__=order["order_id"], __ORDER_TOKEN__=order["order_token"]
    )


def _pay_when_asked(proc: subprocess.Popen[str], live: Live) -> None:
    """The top-up samples print the checkout URL and wait: pay it as the buyer would."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("pay here:"), line
    url = line.split(":", 1)[1].strip()
    paid = httpx.post(url, json={"outcome": "paid"}, timeout=10)
    assert paid.status_code == 200, paid.text


def test_python_top_up_and_reissue_samples_run(live: Live) -> None:
    order = live.buy(500)
    proc = subprocess.Popen(
        [sys.executable, "-c", _order_sample("python_topup.py", live, order)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _pay_when_asked(proc, live)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "applied - the key now holds 800 cents of credit" in out
    done = _run([sys.executable, "-c", _order_sample("python_reissue.py", live, order)])
    assert done.returncode == 0, done.stderr
    assert "new key: VENICE_INFERENCE_KEY_" in done.stdout and "asked for a new key" in done.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_top_up_and_reissue_samples(live: Live) -> None:
    order = live.buy(500)
    topup = _run(["bash", "-e", "-c", _order_sample("curl_topup.sh", live, order)])
    assert topup.returncode == 0, topup.stderr
    created, status = _json_values(topup.stdout)
    assert created["status"] == "awaiting_payment" and created["checkout_url"]
    assert status["topups"][0]["topup_id"] == created["topup_id"]
    reissue = _run(["bash", "-e", "-c", _order_sample("curl_reissue.sh", live, order)])
    assert reissue.returncode == 0, reissue.stderr
    first, _ = _json_values(reissue.stdout)
    assert first["status"] == "replacing"


@pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_DIR / "node_modules" / "openai").exists(),
    reason="node or the openai npm package is not installed (make node)",
)
def test_node_top_up_and_reissue_samples_run(live: Live) -> None:
    order = live.buy(500)
    path = NODE_DIR / "run-node_topup.mjs"
    path.write_text(_order_sample("node_topup.mjs", live, order))
    try:
        proc = subprocess.Popen(
            ["node", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        _pay_when_asked(proc, live)
        out, err = proc.communicate(timeout=60)
    finally:
        path.unlink()
    assert proc.returncode == 0, err
    assert "applied - the key now holds 800 cents of credit" in out
    path = NODE_DIR / "run-node_reissue.mjs"
    path.write_text(_order_sample("node_reissue.mjs", live, order))
    try:
        done = _run(["node", str(path)])
    finally:
        path.unlink()
    assert done.returncode == 0, done.stderr
    assert "new key: VENICE_INFERENCE_KEY_" in done.stdout
