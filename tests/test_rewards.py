"""The neutral reward signature: importing, checking what a reward returns, reward models as rewards."""

from __future__ import annotations

import math

import pytest

import tunebridge as tb
from tunebridge.rewards import NeutralReward, RewardError, check_rewards, import_function, load_rewards
from tunebridge.spec import parse_spec


def rl_spec(tmp_path, reward):
    return parse_spec({"task": "rl", "model": {"builtin": "tiny-llama"}, "data": {"path": "d.jsonl"},
                       "rl": {"reward": reward}}, base_dir=tmp_path)


def test_a_module_beside_the_spec_is_found(tmp_path):
    (tmp_path / "my_rewards_mod.py").write_text(
        "def shout(prompts, completions, **columns):\n    return [c.count('!') for c in completions]\n")
    fn = import_function("my_rewards_mod:shout", tmp_path)
    assert fn(["p"], ["hi!!"]) == [2]
    (reward, weight), = load_rewards(rl_spec(tmp_path, {"function": "my_rewards_mod:shout", "weight": 0.5}))
    assert weight == 0.5 and reward.name == "shout" and reward(["p"], ["a!"]) == [1.0]


def test_unimportable_rewards_are_spec_errors_naming_the_field(tmp_path):
    with pytest.raises(tb.SpecError, match=r"rl.reward\[0\].function: cannot import 'nowhere_mod:f'"):
        check_rewards(rl_spec(tmp_path, "nowhere_mod:f"))
    with pytest.raises(tb.SpecError, match=r"rl.reward\[0\].function: cannot import .*AttributeError"):
        check_rewards(rl_spec(tmp_path, "tunebridge.testing.rewards:missing"))
    with pytest.raises(tb.SpecError, match=r"rl.reward\[1\].model: no reward model folder"):
        check_rewards(rl_spec(tmp_path, ["tunebridge.testing.rewards:letter_e", {"model": "nope"}]))


def test_neutral_reward_checks_what_comes_back():
    ok = NeutralReward(lambda p, c, **k: [1, None], "ok")
    values = ok(["a", "b"], ["x", "y"])
    assert values[0] == 1.0 and math.isnan(values[1])
    with pytest.raises(RewardError, match="reward 'short' returned 1 values for 2 completions"):
        NeutralReward(lambda p, c, **k: [1.0], "short")(["a", "b"], ["x", "y"])
    with pytest.raises(RewardError, match="must return a list of numbers"):
        NeutralReward(lambda p, c, **k: ["high", "low"], "words")(["a", "b"], ["x", "y"])
    with pytest.raises(RewardError, match="returned no number"):
        NeutralReward(lambda p, c, **k: [None, None], "none")(["a", "b"], ["x", "y"])


def test_columns_arrive_as_keyword_lists():
    seen = {}

    def reward(prompts, completions, **columns):
        seen.update(columns)
        return [0.0] * len(completions)

    NeutralReward(reward, "r")(["p1", "p2"], ["c1", "c2"], response=["r1", "r2"], score=[1, 2])
    assert seen == {"response": ["r1", "r2"], "score": [1, 2]}


def test_trl_adapter_passes_columns_and_drops_trl_extras():
    from tunebridge.backends.trl.rewards import adapt

    seen = {}

    def reward(prompts, completions, **columns):
        seen.update(columns)
        return [1.0] * len(completions)

    trl_fn = adapt(NeutralReward(reward, "mine"))
    assert trl_fn.__name__ == "mine"
    out = trl_fn(prompts=["p"], completions=["c"], completion_ids=[[1]], trainer_state=object(),
                 log_extra=None, log_metric=None, response=["r"])
    assert out == [1.0] and seen == {"response": ["r"]}


def test_a_module_beside_the_spec_wins_and_each_spec_gets_its_own(tmp_path):
    for name, value in (("one", 1), ("two", 2)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "tb_same_name_rewards.py").write_text(
            f"def r(prompts, completions, **columns):\n    return [{value}.0] * len(completions)\n")
    first = import_function("tb_same_name_rewards:r", tmp_path / "one")
    second = import_function("tb_same_name_rewards:r", tmp_path / "two")
    assert first([""], ["x"]) == [1.0] and second([""], ["x"]) == [2.0]
    # A module beside the spec shadows an installed one of the same name, for that spec only.
    (tmp_path / "one" / "json.py").write_text("def loads(prompts, completions, **c):\n    return [7.0]\n")
    assert import_function("json:loads", tmp_path / "one")([""], ["x"]) == [7.0]
    import json

    assert json.loads("[1]") == [1] and import_function("json:loads")("[2]") == [2]


def test_two_reward_models_from_run_folders_get_distinct_names(tmp_path):
    from tunebridge.rewards import reward_names
    from tunebridge.spec import parse_spec

    spec = parse_spec({"task": "rl", "model": {"builtin": "tiny-llama"}, "data": {"path": "p.jsonl"},
                       "rl": {"reward": [{"model": "runs/rm-helpful/model"}, {"model": "runs/rm-safe/model"},
                                         {"model": "scorers/judge"}, "pkg.mod:length", "other.mod:length"]}},
                      base_dir=tmp_path)
    assert reward_names(spec) == ["rm-helpful", "rm-safe", "judge", "length", "length_2"]
