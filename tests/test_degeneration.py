"""Degeneration measures against hand-counted examples."""

import pytest

from rlhf_lite.eval.degeneration import degeneration, distinct_n, echoes, last_question, repeated_ngram_rate

Q = "\n\nHuman: What is the capital of France?\n\nAssistant:"


def test_distinct_n_counts_unique_ngrams_over_all_answers():
    answers = [[1, 2, 3, 1, 2, 3], [4, 5]]
    assert distinct_n(answers, 1) == 5 / 8  # 1 2 3 4 5 of 8 tokens
    assert distinct_n(answers, 2) == 4 / 6  # (1,2) (2,3) (3,1) (4,5) of 6 bigrams
    assert distinct_n([[1], []], 2) == 0.0


def test_repeated_ngram_rate_is_the_share_seen_before_in_the_answer():
    assert repeated_ngram_rate([1, 2, 3, 1, 2, 3]) == 1 - 3 / 4  # (1,2,3) comes twice of 4 trigrams
    assert repeated_ngram_rate([7, 7, 7, 7, 7]) == 1 - 1 / 3
    assert repeated_ngram_rate([1, 2, 3, 4]) == 0.0 and repeated_ngram_rate([1, 2]) == 0.0


def test_echoes_the_question():
    assert last_question("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: 2 + 2?\n\nAssistant:") == "2 + 2?"
    assert echoes(Q, " What is the capital of France? Paris.")
    assert echoes(Q, "what is the capital of france")  # a piece of half the question or more
    assert not echoes(Q, " Paris.") and not echoes(Q, " France.")  # short pieces are answers
    assert echoes("\n\nHuman: 请用中文介绍一下长城。\n\nAssistant:", "请用中文介绍一下长城")
    assert not echoes("\n\nHuman: 请用中文介绍一下长城。\n\nAssistant:", "长城是中国古代的军事防御工程。")


def test_degeneration_of_a_set_of_answers():
    eos = 2
    out = degeneration([Q, Q], [[5, 6, 7, eos], [8]], [" Paris is.", " What is the capital of France?"], eos)
    assert out == {
        "distinct_1": 1.0,
        "distinct_2": 1.0,
        "repeated_3gram_rate": 0.0,
        "echo_share": 0.5,
        "short_share": 0.5,
        "mean_length": 2.0,
        "eos_share": 0.5,
        "n": 2,
    }
    with pytest.raises(ValueError):
        degeneration([Q], [], [], eos)
