"""Reading a live Argilla 2.8 server through the argilla SDK (data.path: argilla://WORKSPACE/DATASET).

The fixture starts a real argilla-server 2.8.0 in its own environment (``make argilla-server`` builds it
in .cache/argilla-server-venv; or set TUNEBRIDGE_ARGILLA_SERVER_PYTHON), with SQLite and a Redis from
Debian on 127.0.0.1. Elasticsearch and OpenSearch cannot be installed here, so the server runs with a small
in-memory search engine that this test suite registers (tests/argilla_server/memory_engine.py): it is
NOT Elasticsearch, and only record listing goes through it; datasets, settings, records, responses,
users and workspaces are the real server code with a real database. When the server cannot start, these
tests skip and say why; the reading code after the SDK call is the 2.x export code, tested in test_argilla.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

import tunebridge as tb
from tunebridge.examples import prepare_examples
from tunebridge.spec import parse_spec

rg = pytest.importorskip("argilla", reason="needs the argilla SDK: pip install 'tunebridge[argilla]'")

HERE = Path(__file__).resolve().parent
OWNER_KEY, ANNOTATOR_KEY = "owner.apikey.tunebridge-test", "annotator.apikey.tunebridge-test"


def _server_python(repo: Path) -> Path | None:
    candidates = [os.environ.get("TUNEBRIDGE_ARGILLA_SERVER_PYTHON"),
                  repo / ".cache" / "argilla-server-venv" / "bin" / "python",
                  Path(tempfile.gettempdir()) / "tunebridge-argilla-server-venv" / "bin" / "python"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _up(url: str) -> bool:
    request = urllib.request.Request(f"{url}/api/v1/status", headers={"X-Argilla-Api-Key": OWNER_KEY})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def argilla_server():
    """(url, owner key) of a fresh argilla-server 2.8 on a free port; skips when it cannot start."""
    repo = HERE.parent
    python = _server_python(repo)
    if python is None:
        pytest.skip("no argilla-server 2.8 environment: run `make argilla-server` "
                    "(or set TUNEBRIDGE_ARGILLA_SERVER_PYTHON to its python)")
    redis = shutil.which("redis-server")
    if redis is None:
        pytest.skip("argilla-server needs Redis: apt-get install redis-server")
    home = Path(tempfile.mkdtemp(prefix="tunebridge-argilla-server-"))
    redis_port, port = _free_port(), _free_port()
    env = {**os.environ, "ARGILLA_HOME_PATH": str(home), "ARGILLA_DATABASE_URL": f"sqlite+aiosqlite:///{home}/db.sqlite",
           "ARGILLA_SEARCH_ENGINE": "memory", "ARGILLA_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
           "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    procs: list[subprocess.Popen] = []
    log = (home / "server.log").open("w")
    try:
        procs.append(subprocess.Popen([redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"], stdout=log, stderr=subprocess.STDOUT))
        steps = [["database", "migrate"],
                 ["database", "users", "create", "--first-name", "Owner", "--username", "owner", "--password",
                  "12345678", "--role", "owner", "--api-key", OWNER_KEY, "--workspace", "ws1"],
                 ["database", "users", "create", "--first-name", "Ann", "--username", "ann", "--password",
                  "12345678", "--role", "annotator", "--api-key", ANNOTATOR_KEY, "--workspace", "ws1"]]
        for step in steps:
            done = subprocess.run([str(python), "-m", "argilla_server", *step], env=env, capture_output=True,
                                  text=True, timeout=120)
            if done.returncode != 0:
                pytest.skip(f"argilla-server {' '.join(step[:2])} failed: {done.stderr[-500:]}")
        procs.append(subprocess.Popen([str(python), str(HERE / "argilla_server" / "run_server.py"), str(port)],
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while not _up(url):
            if time.monotonic() > deadline or procs[-1].poll() is not None:
                log.flush()
                pytest.skip(f"argilla-server did not start: {(home / 'server.log').read_text()[-800:]}")
            time.sleep(0.5)
        yield url, OWNER_KEY
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def curated(argilla_server):
    """A dataset 'curated' in ws1 with responses from two users: submitted, draft, and none."""
    url, key = argilla_server
    client = rg.Argilla(api_url=url, api_key=key)
    owner = client.me
    ann = client.users("ann")
    settings = rg.Settings(
        fields=[rg.TextField("prompt"), rg.TextField("original"), rg.TextField("response1"),
                rg.TextField("response2")],
        questions=[rg.TextQuestion("edited", required=False),
                   rg.RatingQuestion("quality", values=[1, 2, 3, 4, 5], required=True),
                   rg.RankingQuestion("preference", values=["response1", "response2"], required=False),
                   rg.LabelQuestion("unused", labels=["a", "b"], required=False)],
        distribution=rg.TaskDistribution(min_submitted=1))
    dataset = rg.Dataset(name="curated", workspace="ws1", settings=settings, client=client).create()

    def ranked(best, worst):
        return [{"value": best, "rank": 1}, {"value": worst, "rank": 2}]

    fields = [{"prompt": f"Question {i}?", "original": f"old {i}", "response1": f"first {i}",
               "response2": f"second {i}"} for i in (1, 2, 3)]
    records = [
        rg.Record(id="r1", fields=fields[0], responses=[
            rg.Response("edited", "new 1", user_id=owner.id, status="submitted"),
            rg.Response("quality", 5, user_id=owner.id, status="submitted"),
            rg.Response("preference", ranked("response1", "response2"), user_id=owner.id, status="submitted")]),
        rg.Record(id="r2", fields=fields[1], responses=[
            rg.Response("edited", "draft 2", user_id=owner.id, status="draft"),
            rg.Response("quality", 2, user_id=owner.id, status="draft")]),
        rg.Record(id="r3", fields=fields[2]),
    ]
    dataset.records.log(records)
    # The annotator's own answers: submitted on r1 (disagreeing on the ranking) and r2.
    dataset.records.log([
        rg.Record(id="r1", fields=fields[0], responses=[
            rg.Response("edited", "ann 1", user_id=ann.id, status="submitted"),
            rg.Response("quality", 3, user_id=ann.id, status="submitted"),
            rg.Response("preference", ranked("response2", "response1"), user_id=ann.id, status="submitted")]),
        rg.Record(id="r2", fields=fields[1], responses=[
            rg.Response("edited", "ann 2", user_id=ann.id, status="submitted"),
            rg.Response("quality", 4, user_id=ann.id, status="submitted")])])
    return url, key


def live_spec(task="reward", **argilla):
    extra = {"rl": {"reward": "tunebridge.testing.rewards:letter_e"}} if task == "rl" else {}
    return parse_spec({"task": task, "model": {"builtin": "tiny-llama"},
                       "data": {"path": "argilla://ws1/curated", "argilla": argilla}, **extra})


@pytest.fixture
def server_env(curated, monkeypatch):
    url, key = curated
    monkeypatch.setenv("ARGILLA_API_URL", url)
    monkeypatch.setenv("ARGILLA_API_KEY", key)
    return url, key


def test_recipes_on_a_live_dataset(server_env):
    ex = prepare_examples(live_spec(recipe="ranking", question="preference", annotators="all",
                                    columns={"prompt": "prompt"}))
    assert sorted((e["prompt"], e["chosen"]) for e in ex.train) == [("Question 1?", "first 1"),
                                                                    ("Question 1?", "second 1")]
    report = ex.report["argilla"]
    assert report["format"] == "server" and report["records"] == 3 and report["rows"] == 2
    ex = prepare_examples(live_spec(recipe="edited-vs-original", edited="edited", original="original",
                                    annotators="all", columns={"prompt": "prompt"}))
    assert sorted(e["chosen"] for e in ex.train) == ["ann 1", "ann 2", "new 1"]
    assert ex.report["argilla"]["ignored_responses"] == {"draft": 1}
    ex = prepare_examples(live_spec("rl", recipe="prompts", reward="quality", columns={"prompt": "prompt"},
                                    statuses=["submitted", "draft"], annotators="all"))
    assert sorted((e["prompt"], e["reward"]) for e in ex.train) == [
        ("Question 1?", 3.0), ("Question 1?", 5.0), ("Question 2?", 2.0), ("Question 2?", 4.0)]


def test_question_types_come_from_the_server(server_env):
    with pytest.raises(tb.DataError, match="question 'unused' is a label_selection question; recipe ranking"):
        prepare_examples(live_spec(recipe="ranking", question="unused"))


def test_the_key_is_never_written(curated, monkeypatch, tmp_path):
    url, key = curated
    monkeypatch.delenv("ARGILLA_API_KEY", raising=False)
    monkeypatch.setenv("ARGILLA_API_URL", url)
    spec = live_spec(recipe="edited-vs-original", edited="edited", original="original", columns={"prompt": "prompt"},
                     api_key=key)
    ex = prepare_examples(spec)
    assert len(ex.train) == 2  # r1 and r2 (the annotator's submitted edit; the owner's is a draft)
    assert key not in json.dumps(spec.to_dict()) and key not in json.dumps(ex.report) and key not in repr(spec)
    bad = live_spec("sft", recipe="sft", columns={"prompt": "prompt"}, api_key="wrong." + key)
    with pytest.raises(tb.DataError) as info:
        prepare_examples(bad)
    assert "cannot read from the Argilla server" in str(info.value) and key not in str(info.value)


def test_missing_dataset_and_missing_settings(server_env, monkeypatch):
    block = {"recipe": "sft", "columns": {"prompt": "p"}}
    spec = parse_spec({"task": "sft", "model": {"builtin": "tiny-llama"},
                       "data": {"path": "argilla://ws1/nope", "argilla": block}})
    with pytest.raises(tb.DataError, match="no dataset 'nope' in workspace 'ws1'"):
        prepare_examples(spec)
    monkeypatch.delenv("ARGILLA_API_KEY")
    with pytest.raises(tb.DataError, match=r"needs ARGILLA_API_KEY \(or data.argilla.api_key\)"):
        prepare_examples(spec)
