"""data_split semantics, weighted mixing, and the cache's invalidation rules."""

import json
import os

import pytest

from rlhf_lite.data import load_rows, load_step_rows
from rlhf_lite.data.split import blend, split_indices
from rlhf_lite.errors import ConfigError, DataError


def test_split_parts_are_disjoint_cover_all_and_follow_fractions():
    parts = [set(split_indices(1000, "2,4,4", p, seed=7).tolist()) for p in range(3)]
    assert [len(p) for p in parts] == [200, 400, 400]
    assert not parts[0] & parts[1] and not parts[1] & parts[2] and not parts[0] & parts[2]
    assert set().union(*parts) == set(range(1000))


def test_split_is_deterministic_and_seeded():
    a = split_indices(500, "2,4,4", 1, seed=3)
    assert (a == split_indices(500, "2,4,4", 1, seed=3)).all()
    assert not (a == split_indices(500, "2,4,4", 1, seed=4)).all()
    # fractions are normalised, as in DeepSpeed-Chat: "1,2,2" is "2,4,4"
    assert (split_indices(500, "1,2,2", 1, seed=3) == a).all()


@pytest.mark.parametrize("bad", ["a,b", "0,0", "-1,2", ""])
def test_bad_data_split_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="data_split"):
        split_indices(10, bad, 0, seed=1)


def test_blend_weights_subsample_and_repeat():
    a, b = [f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]
    mixed = blend([(a, 0.5), (b, 2.0)], seed=1)
    assert sum(x.startswith("a") for x in mixed) == 5
    assert sorted(x for x in mixed if x.startswith("b")) == sorted(b * 2)
    assert mixed == blend([(a, 0.5), (b, 2.0)], seed=1)
    assert mixed[:10] != sorted(mixed)[:10]  # interleaved, not concatenated


def write_pairs(path, n, tag="x"):
    rows = [{"prompt": f"q{tag}{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(n)]
    path.write_text(json.dumps(rows))


def test_step_rows_take_disjoint_shares(tmp_path):
    write_pairs(tmp_path / "train.json", 100)
    write_pairs(tmp_path / "eval.json", 10, tag="e")
    spec = {"name": "local/jsonfile", "path": str(tmp_path)}
    steps = [
        load_step_rows([spec], "train", part=p, data_split="2,4,4", seed=1, cache_dir=str(tmp_path / "c"))[0]
        for p in range(3)
    ]
    prompts = [{r["prompt"] for r in rows} for rows in steps]
    assert [len(p) for p in prompts] == [20, 40, 40]
    assert not (prompts[0] & prompts[1] or prompts[1] & prompts[2] or prompts[0] & prompts[2])
    evals, _ = load_step_rows([spec], "eval", part=1, seed=1, cache_dir=str(tmp_path / "c"))
    assert len(evals) == 10  # evaluation always uses the whole eval split


def test_step_with_empty_share_is_refused(tmp_path):
    write_pairs(tmp_path / "train.json", 3)
    with pytest.raises(DataError, match="leaves no rows for part 0"):
        load_step_rows(
            [str(tmp_path / "train.json")], "train", part=0, data_split="1,100,100", cache_dir=str(tmp_path / "c")
        )


def test_reward_step_refuses_sft_only_data(tmp_path):
    f = tmp_path / "sft.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": f"q{i}", "chosen": "a"}) for i in range(5)))
    with pytest.raises(DataError, match="no rejected answers"):
        load_step_rows([str(f)], "train", need_pairs=True, cache_dir=str(tmp_path / "c"))


def test_cache_hit_then_invalidated_by_a_changed_file(tmp_path):
    f = tmp_path / "train.json"
    write_pairs(f, 5)
    cache = str(tmp_path / "cache")
    first, _ = load_rows(str(f), cache_dir=cache)
    assert len(os.listdir(tmp_path / "cache" / "data")) == 1
    again, _ = load_rows(str(f), cache_dir=cache)
    assert again == first and len(os.listdir(tmp_path / "cache" / "data")) == 1
    # Same size, same name, edited content: DeepSpeed-Chat would serve the stale cache here.
    st = f.stat()
    f.write_text(f.read_text().replace("good 0", "nice 0"))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed, _ = load_rows(str(f), cache_dir=cache)
    assert changed[0]["chosen"] == " nice 0"


def test_cache_keyed_by_split_and_seed(tmp_path):
    f = tmp_path / "train.json"
    write_pairs(f, 50)
    cache = str(tmp_path / "cache")
    eval_a, _ = load_rows(str(f), "eval", seed=1, cache_dir=cache)
    eval_b, _ = load_rows(str(f), "eval", seed=2, cache_dir=cache)
    train_a, _ = load_rows(str(f), "train", seed=1, cache_dir=cache)
    assert len(eval_a) == 5 and len(train_a) == 45 and eval_a != eval_b
    assert not {r["prompt"] for r in eval_a} & {r["prompt"] for r in train_a}


def test_corrupt_cache_entry_is_rebuilt(tmp_path):
    f = tmp_path / "train.json"
    write_pairs(f, 5)
    cache = tmp_path / "cache"
    rows, _ = load_rows(str(f), cache_dir=str(cache))
    (entry,) = (cache / "data").iterdir()
    (entry / "rows.jsonl").write_text('{"prompt": "trunc')
    assert load_rows(str(f), cache_dir=str(cache))[0] == rows


def test_data_split_seed_not_the_runs_seed_picks_a_steps_rows(tmp_path):
    from rlhf_lite.args import ScriptArguments
    from rlhf_lite.training import step_rows

    write_pairs(tmp_path / "train.json", 100)
    write_pairs(tmp_path / "eval.json", 10, tag="e")
    spec = [{"name": "local/jsonfile", "path": str(tmp_path)}]
    prompts = lambda **kw: {r["prompt"] for r in step_rows(ScriptArguments(datasets=spec, **kw), 2, True)[0]}  # noqa: E731
    assert prompts(data_split_seed=1) != prompts(data_split_seed=2)
    assert prompts(data_split_seed=1) == {
        r["prompt"] for r in load_step_rows(spec, "train", part=2, data_split="2,4,4", seed=1, need_pairs=True)[0]
    }
