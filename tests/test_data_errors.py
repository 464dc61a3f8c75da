"""Bad input: one clear error naming file, line and field, or a counted skip with a reason."""

import json
import subprocess
import sys

import pytest

from rlhf_lite.data import load_rows
from rlhf_lite.data.__main__ import main as data_cli
from rlhf_lite.errors import DataError


def load(path, tmp_path, split="train"):
    return load_rows(str(path), split, cache_dir=str(tmp_path / "cache"))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load(tmp_path / "nope.json", tmp_path)


def test_local_jsonfile_without_path():
    with pytest.raises(DataError, match="needs a path"):
        load_rows("local/jsonfile")


def test_unknown_name_lists_known_ones():
    with pytest.raises(DataError, match=r"Known datasets: .*Dahoas/rm-static"):
        load_rows("someone/unknown-set")


def test_malformed_json_list_reports_line(tmp_path):
    f = tmp_path / "train.json"
    f.write_text('[\n{"prompt": "a", "chosen": "b", "rejected": "c"},\n{"prompt": "a" "chosen"}\n]')
    with pytest.raises(DataError, match=r"train\.json:3: malformed JSON"):
        load(f, tmp_path)


def test_malformed_jsonl_line_reports_line(tmp_path):
    f = tmp_path / "train.jsonl"
    good = json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"})
    f.write_text(f"{good}\n\n{good}\n{{broken\n")
    with pytest.raises(DataError, match=r"train\.jsonl:4: malformed JSON line"):
        load(f, tmp_path)


def test_non_utf8_bytes_report_line(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_bytes(b'{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "\xff\xfe"}\n')
    with pytest.raises(DataError, match=r"train\.jsonl:2: not valid UTF-8"):
        load(f, tmp_path)


def test_row_problems_are_counted_skips_with_place(tmp_path):
    f = tmp_path / "train.jsonl"
    rows = [
        {"prompt": "ok", "chosen": "yes", "rejected": "no"},
        {"prompt": "ok2", "chosen": "yes"},  # missing rejected
        {"prompt": "ok3", "chosen": None, "rejected": "no"},
        {"prompt": "ok4", "chosen": "   ", "rejected": "no"},
        {"prompt": "ok5", "chosen": "same", "rejected": " same "},
        {"prompt": 7, "chosen": "yes", "rejected": "no"},
        ["not", "an", "object"],
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "eval.jsonl").write_text(json.dumps(rows[0]))  # so that train is not carved
    kept, report = load(tmp_path, tmp_path)
    assert len(kept) == 1 and report.kept == 1
    assert report.dropped == {
        "missing field 'rejected'": 1,
        "field 'chosen' is null": 1,
        "field 'chosen' is empty": 1,
        "chosen and rejected are identical": 1,
        "field 'prompt' is int, not text": 1,
        "row is list, not an object": 1,
    }
    assert report.first_at["field 'chosen' is null"].endswith("train.jsonl:3")
    assert "dropped 6" in report.summary()


def test_columns_matching_nothing(tmp_path):
    f = tmp_path / "train.json"
    f.write_text(json.dumps([{"q": "a", "a": "b"}]))
    with pytest.raises(DataError, match=r"columns \['a', 'q'\] match no known layout"):
        load(f, tmp_path)


def test_unknown_split(tmp_path):
    f = tmp_path / "train.json"
    f.write_text(json.dumps([{"prompt": "a", "chosen": "b"}]))
    with pytest.raises(DataError, match="no split 'validation'"):
        load(f, tmp_path, split="validation")


def test_empty_after_filtering_is_an_error_for_a_step(tmp_path):
    from rlhf_lite.data import load_step_rows

    f = tmp_path / "train.json"
    f.write_text(json.dumps([{"prompt": "a", "chosen": "b", "rejected": "b"}] * 3))
    with pytest.raises(DataError, match=r"no usable rows left(.|\n)*3 x chosen and rejected are identical"):
        load_step_rows([str(f)], "train", cache_dir=str(tmp_path / "c"))


def test_cli_show_check_and_errors(tmp_path, capsys):
    f = tmp_path / "train.jsonl"
    f.write_text(
        "\n".join(json.dumps({"prompt": f"q{i}", "chosen": f"a{i}", "rejected": f"b{i}"}) for i in range(20))
        + "\n"
        + json.dumps({"prompt": "q", "chosen": "a", "rejected": "a"})
    )
    assert data_cli(["show", str(f), "-n", "2"]) == 0
    out, err = capsys.readouterr()
    assert out.count('"prompt"') == 2 and '"rejected": " b0"' in out and "dropped 1" in err
    assert data_cli(["check", str(f)]) == 0
    out, _ = capsys.readouterr()
    assert "[train]" in out and "[eval]" in out and "1 x chosen and rejected are identical" in out
    assert data_cli(["show", str(tmp_path / "missing.json")]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("error: ") and "Traceback" not in err


def test_cli_is_runnable_as_module(tmp_path):
    f = tmp_path / "train.json"
    f.write_text('[{"prompt": "q", "chosen": "a"')
    proc = subprocess.run([sys.executable, "-m", "rlhf_lite.data", "check", str(f)], capture_output=True, text=True)
    assert proc.returncode == 2 and "malformed JSON" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({"chosen": "yes", "rejected": "no"}, "missing field 'prompt'"),
        ({"prompt": "q", "rejected": "no"}, "missing field 'chosen'"),
        ({"prompt": None, "chosen": "yes", "rejected": "no"}, "field 'prompt' is null"),
        ({"prompt": "q", "chosen": "yes", "rejected": None}, "field 'rejected' is null"),
        ({"prompt": "q", "chosen": "", "rejected": "no"}, "field 'chosen' is empty"),
        ({"prompt": " \n\t ", "chosen": "yes", "rejected": "no"}, "field 'prompt' is empty"),
        ({"prompt": "q", "chosen": "yes", "rejected": "\u3000"}, "field 'rejected' is empty"),  # ideographic space
        ({"prompt": "q", "chosen": "same", "rejected": "same"}, "chosen and rejected are identical"),
        ({"prompt": "q", "chosen": "same\n", "rejected": "  same"}, "chosen and rejected are identical"),
        ({"prompt": 42, "chosen": "yes", "rejected": "no"}, "field 'prompt' is int, not text"),
        ({"prompt": "q", "chosen": True, "rejected": "no"}, "field 'chosen' is bool, not text"),
        ({"prompt": "q", "chosen": ["yes"], "rejected": "no"}, "field 'chosen' is list, not text"),
        ({"prompt": {"text": "q"}, "chosen": "yes", "rejected": "no"}, "field 'prompt' is dict, not text"),
        (
            {"prompt": "q", "chosen": float("nan"), "rejected": "no"},
            "field 'chosen' is float, not text",
        ),  # NaN in JSON
        (
            {"prompt": "q\ud800", "chosen": "yes", "rejected": "no"},
            "field 'prompt' is not valid Unicode (a lone surrogate)",
        ),
        ("just a string", "row is str, not an object"),
    ],
)
def test_each_bad_row_is_skipped_with_its_reason_file_and_line(tmp_path, bad, reason):
    good = {"prompt": "ok", "chosen": "yes", "rejected": "no"}
    f = tmp_path / "train.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [good, good, bad, good]))  # `bad` on line 3
    (tmp_path / "eval.jsonl").write_text(json.dumps(good))
    kept, report = load(tmp_path, tmp_path)
    assert len(kept) == 3 and report.dropped == {reason: 1}
    assert report.first_at[reason] == f"{f}:3"
    assert f"1 x {reason} (first at {f}:3)" in report.summary()


def test_a_bad_row_in_a_json_list_names_its_item(tmp_path):
    f = tmp_path / "train.json"
    f.write_text(json.dumps([{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": None}]))
    (tmp_path / "eval.json").write_text(json.dumps([{"prompt": "a", "chosen": "b", "rejected": "c"}]))
    _, report = load(tmp_path, tmp_path)
    assert report.first_at == {"field 'chosen' is null": f"{f} item 1"}


@pytest.mark.parametrize("content", ["", "\n  \n", "[]"], ids=["empty", "blank-lines", "empty-list"])
def test_an_empty_file_says_so(tmp_path, content):
    f = tmp_path / "train.jsonl"
    f.write_text(content)
    with pytest.raises(DataError, match=r"train\.jsonl: holds no rows \(its data files are empty\)"):
        load(f, tmp_path)


def test_non_utf8_csv_reports_line(tmp_path):
    f = tmp_path / "train.csv"
    f.write_bytes(b"prompt,chosen,rejected\nq,a,b\nq2,\xe9t\xe9,b\n")  # latin-1, not UTF-8
    with pytest.raises(DataError, match=r"train\.csv:3: not valid UTF-8 \(byte 0xe9\)"):
        load(f, tmp_path)


def test_csv_empty_cells_are_counted(tmp_path):
    f = tmp_path / "train.csv"
    f.write_text("prompt,chosen,rejected\nq,a,b\nq2,,b\nq3,a,b\n")
    (tmp_path / "eval.csv").write_text("prompt,chosen,rejected\nq,a,b\n")
    kept, report = load(tmp_path, tmp_path)
    assert len(kept) == 2 and report.first_at == {"field 'chosen' is empty": f"{f}:3"}
