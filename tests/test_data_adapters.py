"""Every registered adapter on a fixture in its source's real column layout, read from a data root."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlhf_lite.data import ADAPTERS, load_rows

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def write_hub_mirror(root: Path, name: str, splits: dict[str, list[dict]]) -> None:
    """Lay rows out like a hub dataset repo: <root>/<name>/data/<split>-00000-of-00001.parquet."""
    data = root / name / "data"
    data.mkdir(parents=True)
    for split, rows in splits.items():
        pq.write_table(pa.Table.from_pylist(rows), data / f"{split}-00000-of-00001.parquet")


def rm_static_row(i, zh=False):
    q = f"问题{i}是什么？" if zh else f"What is question {i}?"
    return {
        "prompt": f"\n\nHuman: {q}\n\nAssistant:",
        "response": f" Answer {i}.",
        "chosen": f" Answer {i}.",
        "rejected": f" Wrong {i}.",
    }


def webgpt_row(i, s0, s1):
    quotes = {"title": ["t"], "extract": ["e"]}
    return {
        "question": {"id": str(i), "full_text": f"Why is the sky blue {i}?", "dataset": "eli5"},
        "quotes_0": quotes,
        "answer_0": f"Because of scattering [1] {i}.",
        "tokens_0": ["a"],
        "score_0": s0,
        "quotes_1": quotes,
        "answer_1": f"No idea (see 2) {i}.",
        "tokens_1": ["b"],
        "score_1": s1,
    }


def shp_row(i, label):
    return {
        "post_id": f"p{i}",
        "domain": "askscience_train",
        "upvote_ratio": 0.9,
        "history": f"How do magnets work {i}?",
        "c_root_id_A": "a",
        "c_root_id_B": "b",
        "created_at_utc_A": 1,
        "created_at_utc_B": 2,
        "score_A": 10,
        "score_B": 3,
        "human_ref_A": f"Field lines {i}.",
        "human_ref_B": f"Magic {i}.",
        "labels": label,
        "seconds_difference": 1.0,
        "score_ratio": 3.3,
    }


def hh_row(i):
    history = f"\n\nHuman: Hi {i}\n\nAssistant: Hello!\n\nHuman: Tell me a fact."
    return {
        "chosen": history + f"\n\nAssistant: Water boils at 100 C {i}.",
        "rejected": history + f"\n\nAssistant: Go away {i}.",
    }


def miracl_row(i, negatives=True):
    passage = lambda t: {"docid": "d", "text": t, "title": "x"}  # noqa: E731
    return {
        "query_id": str(i),
        "query": f"长城有多长{i}？",
        "positive_passages": [passage(f"长城约两万公里{i}。")],
        "negative_passages": [passage(f"熊猫吃竹子{i}。")] if negatives else [],
    }


FIXTURES = {
    "Dahoas/rm-static": {
        "train": [rm_static_row(i) for i in range(20)],
        "test": [rm_static_row(100 + i) for i in range(5)],
    },
    "Dahoas/full-hh-rlhf": {
        "train": [rm_static_row(i) for i in range(20)],
        "test": [rm_static_row(100 + i) for i in range(5)],
    },
    "Dahoas/synthetic-instruct-gptj-pairwise": {
        "train": [
            {"prompt": f"Name a fruit {i}.", "chosen": f"Apple {i}.", "rejected": f"Car {i}."} for i in range(20)
        ]
    },
    "yitingxie/rlhf-reward-datasets": {
        s: [
            {
                "prompt": f"\n\nHuman: Add {i} and 1.\n\n",
                "chosen": f"Assistant: {i + 1}",
                "rejected": f"Assistant: {i + 2}",
            }
            for i in ids
        ]
        for s, ids in (("train", range(20)), ("test", range(100, 105)))
    },
    "openai/webgpt_comparisons": {
        "train": [webgpt_row(i, 1.0, -1.0) for i in range(18)] + [webgpt_row(18, 0.0, 0.0), webgpt_row(19, -1.0, 1.0)]
    },
    "stanfordnlp/SHP": {
        "train": [shp_row(i, 1) for i in range(10)] + [shp_row(i, 0) for i in range(10, 20)],
        "validation": [shp_row(100 + i, 1) for i in range(5)],
        "test": [shp_row(200 + i, 0) for i in range(5)],
    },
    "Anthropic/hh-rlhf": {"train": [hh_row(i) for i in range(20)], "test": [hh_row(100 + i) for i in range(5)]},
    "zwh9029/rm-static-m2m100-zh-jianti": {
        "train": [rm_static_row(i, zh=True) for i in range(20)],
        "test": [rm_static_row(100 + i, zh=True) for i in range(5)],
    },
    "wangrui6/Zhihu-KOL": {
        "train": [
            {"INSTRUCTION": f"如何学习{i}？", "RESPONSE": f"多练习{i}。", "SOURCE": "zhihu", "METADATA": "{}"}
            for i in range(20)
        ]
    },
    "Hello-SimpleAI/HC3-Chinese": {
        "train": [
            {
                "id": str(i),
                "question": f"什么是光合作用{i}？",
                "human_answers": [f"植物利用光能{i}。", "x"],
                "chatgpt_answers": ["y"],
            }
            for i in range(19)
        ]
        + [{"id": "19", "question": "空？", "human_answers": [], "chatgpt_answers": ["y"]}]
    },
    "Cohere/miracl-zh-queries-22-12": {
        "train": [miracl_row(i) for i in range(19)] + [miracl_row(19, False)],
        "dev": [miracl_row(100 + i) for i in range(5)],
    },
}

EXPECTED_FIRST = {
    "Dahoas/rm-static": ("\n\nHuman: What is question 0?\n\nAssistant:", " Answer 0.", " Wrong 0."),
    "Dahoas/synthetic-instruct-gptj-pairwise": ("\n\nHuman: Name a fruit 0.\n\nAssistant:", " Apple 0.", " Car 0."),
    "yitingxie/rlhf-reward-datasets": ("\n\nHuman: Add 0 and 1.\n\nAssistant:", " 1", " 2"),
    "openai/webgpt_comparisons": (
        "\n\nHuman: Why is the sky blue 0?\n\nAssistant:",
        " Because of scattering 0.",
        " No idea 0.",
    ),
    "stanfordnlp/SHP": ("\n\nHuman: How do magnets work 0?\n\nAssistant:", " Field lines 0.", " Magic 0."),
    "Anthropic/hh-rlhf": (
        "\n\nHuman: Hi 0\n\nAssistant: Hello!\n\nHuman: Tell me a fact.\n\nAssistant:",
        " Water boils at 100 C 0.",
        " Go away 0.",
    ),
    "wangrui6/Zhihu-KOL": ("\n\nHuman: 如何学习0？\n\nAssistant:", " 多练习0。", None),
    "Hello-SimpleAI/HC3-Chinese": ("\n\nHuman: 什么是光合作用0？\n\nAssistant:", " 植物利用光能0。", None),
    "Cohere/miracl-zh-queries-22-12": (
        "\n\nHuman: 长城有多长0？\n\nAssistant:",
        " 长城约两万公里0。",
        " 熊猫吃竹子0。",
    ),
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror")
    for name, splits in FIXTURES.items():
        write_hub_mirror(root, name, splits)
    return root


def test_every_required_name_is_registered():
    for name in list(FIXTURES) + ["local/jsonfile"]:
        assert name in ADAPTERS


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_adapter_on_its_real_layout(name, data_root, tmp_path):
    train, report = load_rows(name, "train", data_dir=str(data_root), cache_dir=str(tmp_path))
    evals, _ = load_rows(name, "eval", data_dir=str(data_root), cache_dir=str(tmp_path))
    has_eval_split = len(FIXTURES[name]) > 1
    # Sources without an eval split hold out a seeded 10% of train, disjoint from train.
    assert len(train) + report.total_dropped + (0 if has_eval_split else len(evals)) == 20
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in evals}
    for row in train + evals:
        assert row["prompt"].startswith("\n\nHuman: ") and row["prompt"].endswith("\n\nAssistant:")
        assert row["chosen"].startswith(" ") and not row["chosen"].startswith("  ")
        assert ("rejected" in row) == ADAPTERS[name].pairs
    if name in EXPECTED_FIRST:
        prompt, chosen, rejected = EXPECTED_FIRST[name]
        first = next(r for r in train + evals if r["prompt"] == prompt)
        assert first["chosen"] == chosen and first.get("rejected") == rejected


def test_counted_skips_name_reason_and_place(data_root, tmp_path):
    _, report = load_rows("Cohere/miracl-zh-queries-22-12", "train", data_dir=str(data_root), cache_dir=str(tmp_path))
    assert report.dropped == {"no positive or no negative passage": 1}
    assert "train-00000-of-00001.parquet row 19" in report.first_at["no positive or no negative passage"]


def test_webgpt_prefers_higher_score_and_drops_ties(data_root, tmp_path):
    rows, report = load_rows(
        "openai/webgpt_comparisons", "train", data_dir=str(data_root), cache_dir=str(tmp_path), seed=0
    )
    evals, eval_report = load_rows(
        "openai/webgpt_comparisons", "eval", data_dir=str(data_root), cache_dir=str(tmp_path), seed=0
    )
    assert report.dropped["tied scores (no preference)"] + eval_report.dropped["tied scores (no preference)"] == 1
    flipped = [r for r in rows + evals if "19" in r["prompt"]]
    assert (
        flipped and flipped[0]["chosen"] == " No idea 19." and flipped[0]["rejected"] == " Because of scattering 19."
    )


def test_shp_label_picks_the_preferred_reply(data_root, tmp_path):
    rows, _ = load_rows("stanfordnlp/SHP", "train", data_dir=str(data_root), cache_dir=str(tmp_path))
    row = next(r for r in rows if "work 15?" in r["prompt"])
    assert row["chosen"] == " Magic 15." and row["rejected"] == " Field lines 15."
    validation, _ = load_rows("stanfordnlp/SHP", "eval", data_dir=str(data_root), cache_dir=str(tmp_path))
    assert all("10" in r["prompt"] for r in validation)  # the validation split, not test


def test_local_file_recognised_by_columns(tmp_path):
    f = tmp_path / "mine.parquet"
    pq.write_table(pa.Table.from_pylist(FIXTURES["Cohere/miracl-zh-queries-22-12"]["train"]), f)
    rows, report = load_rows(str(f), "train", cache_dir=str(tmp_path / "c"))
    assert "via Cohere/miracl-zh-queries-22-12" in report.source
    assert rows[0]["rejected"].startswith(" 熊猫")


def test_local_jsonfile_directory_in_deepspeed_chat_layout(tmp_path):
    import json

    (tmp_path / "data").mkdir()
    rows = [
        {"prompt": f"\n\nHuman: q{i}\n\nAssistant:", "chosen": f" good {i}", "rejected": f" bad {i}"} for i in range(6)
    ]
    (tmp_path / "data" / "train.json").write_text(json.dumps(rows))
    (tmp_path / "data" / "eval.json").write_text("\n".join(json.dumps(r) for r in rows[:2]))
    train, _ = load_rows({"name": "local/jsonfile", "path": str(tmp_path)}, "train", cache_dir=str(tmp_path / "c"))
    evals, _ = load_rows({"name": "local/jsonfile", "path": str(tmp_path)}, "eval", cache_dir=str(tmp_path / "c"))
    assert len(train) == 6 and len(evals) == 2 and train[0]["rejected"] == " bad 0"


def test_sft_only_jsonfile_has_no_rejected(tmp_path):
    import json

    f = tmp_path / "train.jsonl"
    f.write_text("\n".join(json.dumps({"prompt": f"q{i}", "chosen": f"a{i}"}) for i in range(5)))
    rows, _ = load_rows(str(f), "train", cache_dir=str(tmp_path / "c"))
    assert rows[0] == {"prompt": "\n\nHuman: q0\n\nAssistant:", "chosen": " a0"}


def test_registering_your_own_adapter(tmp_path):
    import json

    from rlhf_lite.data import register

    @register("test/my-qa", columns=("question", "good", "bad"), eval_split=None)
    def my_qa(row):
        return {"prompt": row["question"], "chosen": row["good"], "rejected": row["bad"]}

    try:
        f = tmp_path / "qa.json"
        f.write_text(json.dumps([{"question": "2+2?", "good": "4", "bad": "5"}] * 3))
        rows, report = load_rows(str(f), "train", cache_dir=str(tmp_path / "c"), seed=1)
        assert "via test/my-qa" in report.source
        assert rows[0] == {"prompt": "\n\nHuman: 2+2?\n\nAssistant:", "chosen": " 4", "rejected": " 5"}
    finally:
        del ADAPTERS["test/my-qa"]


@pytest.mark.parametrize(
    "name,n_train,pairs",
    [
        ("Dahoas/rm-static", 1000, True),
        ("Anthropic/hh-rlhf", 1000, True),
        ("zwh9029/rm-static-m2m100-zh-jianti", 180, True),
        ("wangrui6/Zhihu-KOL", 540, False),
    ],
)
def test_shared_real_samples_load(name, n_train, pairs, tmp_path):
    if not (SHARED / name).exists():
        pytest.skip(f"{SHARED / name} not present")
    rows, report = load_rows(str(SHARED / name), "train", cache_dir=str(tmp_path))
    assert len(rows) == n_train and report.total_dropped == 0
    assert ("rejected" in rows[0]) == pairs
    # Through the data root, by hub name, the same rows come out.
    by_name, _ = load_rows(name, "train", data_dir=str(SHARED), cache_dir=str(tmp_path))
    assert by_name == rows
