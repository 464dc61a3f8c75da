"""The project's own bilingual (English / Simplified Chinese) demo preference data.

Every step of the pipeline (SFT, reward model, PPO) needs data, and the public sets are large,
hub-hosted and mostly English. This module writes a small set that ships inside the package, so
the whole pipeline can run offline, on CPU, in minutes, with a 135M-parameter model:

* Format: DeepSpeed-Chat's ``local/jsonfile`` layout, a folder holding ``train.json`` and
  ``eval.json``, each a JSON list of ``{"prompt", "chosen", "rejected"}`` objects. Prompts follow
  DeepSpeed-Chat's convention ``"\\n\\nHuman: ...\\n\\nAssistant:"`` (a few are multi-turn) and
  each answer starts with one space, so ``prompt + answer`` is the exact text the models see.
* Content: every question, answer and fact is written here, from small tables and templates;
  nothing is copied from a public data set. Questions mix arithmetic, unit conversions, capitals,
  opposites and definitions, translation, colours, days and months, science, how-to advice,
  polite writing requests and short dialogues, in both languages.
* Preference: ``chosen`` is helpful, on-topic, correct and polite. ``rejected`` is one of several
  kinds of bad answer -- a polite but factually wrong answer (same template as the good one),
  an answer to a different question, a rude answer (sometimes rude *and* correct), a refusal of a
  harmless question, or rambling / near-empty filler. Mixing them keeps any single surface cue
  (length, a word, politeness markers, the presence of the right fact) from separating the pair
  on its own, so a reward model has to learn "helpful, correct and polite" to score well.
* Eval split: held out by *fact*, not by pair -- a country, word, number pair or how-to question
  that is asked in ``eval.json`` is never asked in ``train.json`` (in the same language), so eval
  accuracy measures generalisation rather than memorised prompts.
* Determinism: one seeded ``random.Random`` drives every choice and the JSON is written with
  stable ordering, so regenerating gives byte-identical files (a test checks the shipped ones).

Regenerate with ``python tools/demo_data.py [--out DIR]`` (the tables are in demo_tables.json).
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SEED = 1234
EVAL_FRACTION = 0.14
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "rlhf_lite" / "data" / "demo"
LANGS = ("en", "zh")

# ================================================================ fact tables

# The tables every question, answer and fact is built from (a data file, not code).
TABLES = json.loads(Path(__file__).with_name("demo_tables.json").read_text(encoding="utf-8"))
(
    CAPITALS,
    UNITS,
    OPPOSITES,
    DEFINITIONS,
    WORDS,
    COLOURS,
    COLOUR_NAMES,
    DAYS,
    MONTHS,
    ORDINALS,
    SCIENCE,
    HOWTO,
    REQUESTS,
    DIALOGUES,
    TOPICS,
    RUDE,
    RUDE_CORRECT,
    REFUSALS,
    RAMBLES,
    PREFIXES,
    SUFFIXES,
    ARITH_Q,
    ARITH_A,
    FOLLOW_UPS,
    CALENDAR,
) = (TABLES[name] for name in TABLES)


# ================================================================ how answers go wrong


# Roughly half the rejected answers (wrong facts, other questions' answers) are as long as a good
# answer; rude replies run shorter and rambling longer, so length alone cannot tell them apart.
N_EMPTY = 5  # the first RAMBLES of each language are near-empty
TWIN = 0.6
# Wrong facts and other questions' answers are kept rare: telling them apart takes knowledge a
# 135M reward model trained for a few CPU minutes lacks (about 0.7 accuracy on them, ~1.0 on the rest).
KIND_WEIGHTS = {"wrong": 8, "off_topic": 12, "rude": 28, "refusal": 26, "ramble": 26}


@dataclass
class Item:
    category: str
    turns: list[str]  # human, assistant, human, ... ending with a human turn
    chosen: str
    wrong: str | None = None  # polite, on-topic, but incorrect
    short: str | None = None  # the bare correct fact, for the rude-but-correct reply

    @property
    def prompt(self) -> str:
        return (
            "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(self.turns))
            + "\n\nAssistant:"
        )


def _dress(lang, text, rng):
    # The same dressing goes on good and wrong answers, so pleasantries don't mark the good one.
    return rng.choice(PREFIXES[lang]) + text + rng.choice(SUFFIXES[lang])


def _answers(render, good, bad, rng):
    """The good answer and a polite wrong one, each ``render(value, rng)``.

    Most often both come from the same template with the same pleasantries (a "twin"), so the
    fact is the only difference and the two are equally long; otherwise they are drawn apart.
    """
    seed, twin = rng.random(), rng.random() < TWIN
    return render(good, random.Random(seed)), render(bad, random.Random(seed) if twin else rng)


def _tidy(text):
    return text.replace("D.C..", "D.C.")  # "Washington, D.C." at the end of a sentence


def _num(lang, n):
    return f"{n:,}" if lang == "en" else str(n)


def _cap(s):
    return s[:1].upper() + s[1:]


# ================================================================ question builders
# Each takes the facts of one split and returns its Items; a few facts become dialogues.

OPS = {
    "+": ("plus", "加", lambda a, b: a + b),
    "-": ("minus", "减", lambda a, b: a - b),
    "×": ("times", "乘以", lambda a, b: a * b),
    "÷": ("divided by", "除以", lambda a, b: a // b),
}


def _arith_answer(lang, a, op, b, c, rng, explain=False):
    word = OPS[op][0 if lang == "en" else 1]
    if explain:  # a worked step, only ever on good answers, so length varies among them
        if op == "+" and a >= 10 and b >= 10:
            ta, oa, tb, ob = a // 10 * 10, a % 10, b // 10 * 10, b % 10
            return (
                f"Add the tens, then the ones: {ta} + {tb} = {ta + tb} and {oa} + {ob} = "
                f"{oa + ob}, so {a} + {b} = {c}."
                if lang == "en"
                else f"先算十位：{ta} + {tb} = {ta + tb}，再算个位：{oa} + {ob} = {oa + ob}，所以 {a} + {b} = {c}。"
            )
        if op == "-":
            return (
                f"{a} - {b} = {c}. You can check it: {c} + {b} = {a}."
                if lang == "en"
                else f"{a} - {b} = {c}。验算一下：{c} + {b} = {a}。"
            )
        if op == "÷":
            return (
                f"{a} ÷ {b} = {c}, because {b} × {c} = {a}."
                if lang == "en"
                else f"{a} ÷ {b} = {c}，因为 {b} × {c} = {a}。"
            )
    return _dress(lang, rng.choice(ARITH_A[lang]).format(a=a, b=b, c=c, op=op, word=word), rng)


def _off_by(c, rng):
    return max(0, c + rng.choice([-10, -2, -1, 1, 2, 10])) or c + 1


def arithmetic_facts(rng):
    facts, seen = [], set()
    plan = [("+", 22), ("-", 18), ("×", 18), ("÷", 12)]
    for op, n in plan:
        while sum(f[0] == op for f in facts) < n:
            if op == "+":
                a, b = rng.randint(11, 99), rng.randint(2, 99)
            elif op == "-":
                a = rng.randint(30, 99)
                b = rng.randint(3, a - 5)
            elif op == "×":
                a, b = rng.randint(3, 25), rng.randint(2, 12)
            else:
                b, q = rng.randint(2, 12), rng.randint(2, 15)
                a = b * q
            if (op, a, b) not in seen:
                seen.add((op, a, b))
                facts.append((op, a, b))
    return facts


def build_arith(lang, facts, rng):
    items = []
    for i, (op, a, b) in enumerate(facts):
        c = OPS[op][2](a, b)
        q = rng.choice(ARITH_Q[lang][op]).format(a=a, b=b)
        if i % 7 == 6:  # a follow-up that depends on the previous answer
            op2 = rng.choice(["×", "+", "-"] if c > 6 else ["×", "+"])
            k = rng.randint(2, {"×": 5, "+": 20, "-": min(20, c - 1)}[op2])
            d = OPS[op2][2](c, k)
            turns = [
                q,
                f"{a} {op} {b} = {c}" + ("." if lang == "en" else "。"),
                rng.choice(FOLLOW_UPS[lang][op2]).format(k=k),
            ]
            good, bad = _answers(lambda x, r: _arith_answer(lang, c, op2, k, x, r), d, _off_by(d, rng), rng)
            items.append(Item("arith", turns, good, bad, str(d)))
            continue
        good, bad = _answers(lambda x, r: _arith_answer(lang, a, op, b, x, r), c, _off_by(c, rng), rng)
        if rng.random() < 0.25:  # a worked step, only ever on good answers
            good = _arith_answer(lang, a, op, b, c, rng, explain=True)
        items.append(Item("arith", [q], good, bad, str(c)))
    return items


def unit_facts(rng):
    facts = []
    for u in range(len(UNITS)):
        for direction in ("down", "up"):
            for n in rng.sample(range(2, 10), 2):
                facts.append((u, direction, n))
    return facts


def _units_answer(lang, u, direction, n, m, f, rng):
    """``n`` big units are ``m`` small ones, as ``1 big = f small`` (all three true or not)."""
    big, bigs, smalls, _, zbig, zsmall = UNITS[u]
    explain = rng.random() < 0.3 and f is not None
    if lang == "en":
        big_n = f"{_num(lang, n)} {bigs}"
        small_m = f"{_num(lang, m)} {smalls}"
        if explain:
            return (
                f"Since 1 {big} is {_num(lang, f)} {smalls}, {big_n} is {small_m}."
                if direction == "down"
                else f"Since 1 {big} is {_num(lang, f)} {smalls}, {small_m} is {big_n}."
            )
        forms = (
            [f"{big_n} is {small_m}.", f"There are {small_m} in {big_n}.", f"That's {small_m}."]
            if direction == "down"
            else [f"{small_m} is {big_n}.", f"{_cap(small_m)} equals {big_n}.", f"That's {big_n}."]
        )
    else:
        if explain:
            return (
                f"因为1{zbig}等于{f}{zsmall}，所以{n}{zbig}等于{m}{zsmall}。"
                if direction == "down"
                else f"因为1{zbig}等于{f}{zsmall}，所以{m}{zsmall}等于{n}{zbig}。"
            )
        forms = (
            [f"{n}{zbig}等于{m}{zsmall}。", f"{n}{zbig}是{m}{zsmall}。", f"一共是{m}{zsmall}。"]
            if direction == "down"
            else [f"{m}{zsmall}等于{n}{zbig}。", f"{m}{zsmall}是{n}{zbig}。", f"正好是{n}{zbig}。"]
        )
    return _dress(lang, rng.choice(forms), rng)


def build_units(lang, facts, rng):
    items = []
    for u, direction, n in facts:
        big, bigs, smalls, f, zbig, zsmall = UNITS[u]
        m = n * f
        if lang == "en":
            qs = (
                [f"How many {smalls} are in {n} {bigs}?", f"Convert {n} {bigs} to {smalls}."]
                if direction == "down"
                else [f"How many {bigs} is {_num(lang, m)} {smalls}?", f"Convert {_num(lang, m)} {smalls} to {bigs}."]
            )
        else:
            qs = (
                [f"{n}{zbig}等于多少{zsmall}？", f"{n}{zbig}有多少{zsmall}？"]
                if direction == "down"
                else [f"{m}{zsmall}等于多少{zbig}？", f"{m}{zsmall}换算成{zbig}是多少？"]
            )
        # Wrong: the conversion factor of some other pair of units (the classic slip).
        factors = [x for x in (10, 100, 1000, 60, 24, 7, 12) if x != f]
        if direction == "down":
            bad_f = rng.choice(factors)
            bad_v = (n, n * bad_f, bad_f)
            short = f"{_num(lang, m)} {smalls}" if lang == "en" else f"{m}{zsmall}"
        else:
            factors = [x for x in factors if m % x == 0 and m // x != n]
            bad_f = rng.choice(factors) if factors else None
            bad_v = (m // bad_f, m, bad_f) if bad_f else (n + 1, m, None)
            short = f"{n} {bigs}" if lang == "en" else f"{n}{zbig}"
        good_v = (n, m, f)
        good, bad = _answers(lambda v, r: _units_answer(lang, u, direction, *v, r), good_v, bad_v, rng)
        items.append(Item("units", [rng.choice(qs)], good, bad, short))
    return items


def build_capitals(lang, facts, rng):
    en = lang == "en"
    ask = (
        [
            "What is the capital of {c}?",
            "Which city is the capital of {c}?",
            "What's the capital city of {c}?",
            "Do you know the capital of {c}?",
        ]
        if en
        else ["{c}的首都是哪里？", "{c}的首都是哪座城市？", "你知道{c}的首都吗？", "请问{c}的首都在哪儿？"]
    )
    say = (
        ["The capital of {c} is {x}.", "{x} is the capital of {c}.", "It's {x}."]
        if en
        else ["{c}的首都是{x}。", "{x}是{c}的首都。", "是{x}。"]
    )
    follow = (
        ["What about {c}?", "And {c}?", "And what is the capital of {c}?"]
        if en
        else ["那{c}呢？", "{c}的首都呢？", "那{c}的首都是哪里？"]
    )
    items = []
    for i, fact in enumerate(facts):
        country, capital, tempting = (fact[0], fact[1], fact[2]) if en else (fact[3], fact[4], fact[5])

        def answer(x, r, _c=country):
            return _dress(lang, _cap(r.choice(say).format(c=_c, x=x)), r)

        if i % 6 == 5:  # the follow-up only makes sense with the earlier turn in view
            prev = facts[i - 1]
            pc, px = (prev[0], prev[1]) if en else (prev[3], prev[4])
            turns = [
                rng.choice(ask).format(c=pc),
                _cap(say[0].format(c=pc, x=px)),
                rng.choice(follow).format(c=country),
            ]
            # Repeating the previous turn's city is the typical context mistake.
            good, bad = _answers(answer, capital, rng.choice([px, tempting]), rng)
            items.append(Item("capital", turns, good, bad, capital))
            continue
        good, bad = _answers(answer, capital, tempting, rng)
        items.append(Item("capital", [rng.choice(ask).format(c=country)], good, bad, capital))
    return items


def build_opposites(lang, facts, rng):
    pool = [o for _, o in OPPOSITES[lang]]
    if lang == "en":
        ask = [
            "What is the opposite of '{w}'?",
            "What's the opposite of {w}?",
            "Give me the opposite of the word '{w}'.",
            "Which word means the opposite of '{w}'?",
        ]
        say = [
            "The opposite of '{w}' is '{o}'.",
            "It's '{o}'.",
            "Its opposite is '{o}'.",
            "The word you're looking for is '{o}'.",
        ]
    else:
        ask = ["“{w}”的反义词是什么？", "请说出“{w}”的反义词。", "和“{w}”意思相反的词是什么？"]
        say = ["“{w}”的反义词是“{o}”。", "是“{o}”。", "“{w}”和“{o}”是一对反义词。"]
    items = []
    for w, o in facts:
        bad = rng.choice([p for p in pool if p != o])
        good, bad = _answers(lambda x, r: _dress(lang, r.choice(say).format(w=w, o=x), r), o, bad, rng)
        items.append(Item("opposite", [rng.choice(ask).format(w=w)], good, bad, o))
    return items


def build_definitions(lang, facts, rng):
    pool = [d for _, d in DEFINITIONS[lang]]
    if lang == "en":
        ask = ["What does '{w}' mean?", "What is the meaning of the word '{w}'?", "Can you tell me what '{w}' means?"]
        say = ["'{W}' means {d}.", "The word '{w}' means {d}.", "It means {d}."]
    else:
        ask = ["“{w}”是什么意思？", "请解释一下“{w}”这个词。", "“{w}”这个词怎么理解？"]
        say = ["“{w}”的意思是{d}。", "“{w}”这个词指的是{d}。", "“{w}”就是{d}的意思。"]
    items = []
    for w, d in facts:
        bad = rng.choice([p for p in pool if p != d])
        good, bad = _answers(lambda x, r: _dress(lang, r.choice(say).format(w=w, W=_cap(w), d=x), r), d, bad, rng)
        items.append(Item("define", [rng.choice(ask).format(w=w)], good, bad))
    return items


def build_translation(lang, facts, rng):
    en_pool, zh_pool = [e for e, _ in WORDS], [z for _, z in WORDS]
    items = []
    for i, (e, z) in enumerate(facts):
        to_chinese = i % 2 == 0  # both directions, asked in either language
        if lang == "en":
            if to_chinese:
                ask = ["How do you say '{e}' in Chinese?", "What is the Chinese word for '{e}'?"]
                say = ["In Chinese, '{e}' is {z}.", "The Chinese word for '{e}' is {z}.", "You say {z}."]
                follow = "And '{e}'?"
            else:
                ask = ["What does {z} mean in English?", "What is {z} in English?"]
                say = ["{z} means '{e}' in English.", "In English, {z} means '{e}'.", "It means '{e}'."]
                follow = "And {z}?"
        else:
            if to_chinese:
                ask = ["英语里的“{e}”是什么意思？", "“{e}”翻译成中文是什么？"]
                say = ["“{e}”的意思是“{z}”。", "“{e}”翻译成中文是“{z}”。", "是“{z}”的意思。"]
                follow = "那“{e}”呢？"
            else:
                ask = ["“{z}”用英语怎么说？", "“{z}”的英文是什么？"]
                say = ["“{z}”的英文是 {e}。", "“{z}”用英语说是 {e}。", "英语里说 {e}。"]
                follow = "那“{z}”呢？"
        bad_e = rng.choice([x for x in en_pool if x != e])
        bad_z = zh_pool[en_pool.index(bad_e)]

        # Wrong answers keep the asked word and give another word's translation.
        def fill(pair, r, _say=say, _to=to_chinese, _e=e, _z=z):
            ee, zz = (_e, pair[1]) if _to else (pair[0], _z)
            return _dress(lang, r.choice(_say).format(e=ee, z=zz), r)

        short = z if to_chinese else e
        short = f"“{short}”" if lang == "zh" else short
        if i % 8 == 7:
            pe, pz = facts[i - 2]  # same direction as this one
            turns = [rng.choice(ask).format(e=pe, z=pz), say[0].format(e=pe, z=pz), follow.format(e=e, z=z)]
            good, bad = _answers(fill, (e, z), (pe, pz), rng)
            items.append(Item("translate", turns, good, bad, short))
            continue
        good, bad = _answers(fill, (e, z), (bad_e, bad_z), rng)
        items.append(Item("translate", [rng.choice(ask).format(e=e, z=z)], good, bad, short))
    return items


def build_colours(lang, facts, rng):
    if lang == "en":
        ask = ["What colour is {t}?", "Can you tell me what colour {t} is?", "Which colour is {t}?"]
        say = ["{T} is {c}.", "{T} is usually {c}.", "It's {c}."]
    else:
        ask = ["{t}是什么颜色的？", "{t}通常是什么颜色？"]
        say = ["{t}是{c}的。", "{t}通常是{c}的。", "是{c}的。"]
    items = []
    for t, c in facts:
        bad = rng.choice([x for x in COLOUR_NAMES[lang] if x != c])
        good, bad = _answers(lambda x, r: _dress(lang, r.choice(say).format(t=t, T=_cap(t), c=x), r), c, bad, rng)
        items.append(Item("colour", [rng.choice(ask).format(t=t)], good, bad, c))
    return items


def calendar_facts(rng):
    facts = [(k, i) for k in ("day_after", "day_before") for i in range(7)]
    facts += [(k, i) for k in ("month_after", "month_before", "month_nth") for i in range(12)]
    return rng.sample(facts, 34)


def build_calendar(lang, facts, rng):
    items = []
    for kind, i in facts:
        names = DAYS[lang] if kind.startswith("day") else MONTHS[lang]
        step = 1 if kind in ("day_after", "month_after") else -1
        if kind == "month_nth":
            d, x, bad = ORDINALS[lang][i], names[i], names[(i + rng.choice([-1, 1])) % 12]
        else:  # going the wrong way round the week is the classic slip
            d, x, bad = names[i], names[(i + step) % len(names)], names[(i - step) % len(names)]
        ask, say = CALENDAR[lang][kind]
        good, bad = _answers(lambda y, r: _dress(lang, _cap(r.choice(say).format(d=d, x=y)), r), x, bad, rng)
        items.append(Item("calendar", [rng.choice(ask).format(d=d)], good, bad, x))
    return items


def build_science(lang, facts, rng):
    return [
        Item("science", [q], *_answers(lambda t, r: _dress(lang, t, r), good, bad, rng), short)
        for q, good, bad, short in facts
    ]


def build_howto(lang, facts, rng):
    return [Item("howto", [q], *_answers(lambda t, r: _dress(lang, t, r), good, bad, rng)) for q, good, bad in facts]


def build_requests(lang, facts, rng):
    return [Item("request", [q], note) for q, note in facts]


def build_dialogues(lang, facts, rng):
    return [Item("dialogue", list(turns), good, bad) for turns, good, bad in facts]


def _categories(lang, rng):
    """(builder, facts) per category; the facts are split before anything is phrased."""
    return [
        (build_arith, arithmetic_facts(rng)),
        (build_units, unit_facts(rng)),
        (build_capitals, CAPITALS),
        (build_opposites, OPPOSITES[lang]),
        (build_definitions, DEFINITIONS[lang]),
        (build_translation, WORDS),
        (build_colours, COLOURS[lang]),
        (build_calendar, calendar_facts(rng)),
        (build_science, SCIENCE[lang]),
        (build_howto, HOWTO[lang]),
        (build_requests, REQUESTS[lang]),
        (build_dialogues, DIALOGUES[lang]),
    ]


# ================================================================ assembling the pairs


def _rejected(lang, item, pool, rng):
    kinds = [k for k in KIND_WEIGHTS if k != "wrong" or item.wrong]
    kind = rng.choices(kinds, weights=[KIND_WEIGHTS[k] for k in kinds])[0]
    topic = TOPICS[lang][item.category]
    if kind == "wrong":
        return kind, item.wrong
    if kind == "off_topic":  # a good answer -- to some other question, and about as long
        others = rng.sample([o for o in pool if o.category != item.category], 4)
        return kind, min(others, key=lambda o: abs(len(o.chosen) - len(item.chosen))).chosen
    if kind == "rude":
        if item.short and rng.random() < 0.35:
            return "rude_correct", rng.choice(RUDE_CORRECT[lang]).format(x=item.short)
        return kind, rng.choice(RUDE[lang])
    if kind == "refusal":
        return kind, rng.choice(REFUSALS[lang]).format(topic=topic)
    i = rng.randrange(len(RAMBLES[lang]))
    return ("empty" if i < N_EMPTY else "ramble"), RAMBLES[lang][i].format(topic=topic)


def _build(seed=SEED):
    """Rows per split, each with its language and rejected kind (used by the counts)."""
    rng = random.Random(seed)
    splits = {"train": [], "eval": []}
    for lang in LANGS:
        by_split = {"train": [], "eval": []}
        for build, facts in _categories(lang, rng):
            facts = list(facts)
            rng.shuffle(facts)
            n_eval = max(1, round(len(facts) * EVAL_FRACTION))
            by_split["eval"] += build(lang, facts[:n_eval], rng)
            by_split["train"] += build(lang, facts[n_eval:], rng)
        for split, items in by_split.items():
            # Off-topic answers come from the same split, so eval answers never leak into train.
            for item in items:
                kind, rejected = _rejected(lang, item, items, rng)
                splits[split].append(
                    {
                        "prompt": item.prompt,
                        "chosen": " " + _tidy(item.chosen),
                        "rejected": " " + _tidy(rejected),
                        "_lang": lang,
                        "_kind": kind,
                        "_fact": item.short,
                    }
                )
    for rows in splits.values():
        rng.shuffle(rows)  # interleaves the two languages and the categories
    _check(splits)
    return splits


def _check(splits):
    prompts = {s: {r["prompt"] for r in rows} for s, rows in splits.items()}
    assert not prompts["train"] & prompts["eval"], "an eval question is also in train"
    for rows in splits.values():
        assert len({r["prompt"] for r in rows}) == len(rows), "duplicate prompt"
        for r in rows:
            assert r["prompt"].startswith("\n\nHuman: ") and r["prompt"].endswith("\n\nAssistant:")
            assert r["chosen"] != r["rejected"], r
            for key in ("chosen", "rejected"):
                assert r[key].startswith(" ") and not r[key].startswith("  ") and r[key].strip()


def _public(rows):
    return [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]


def generate_demo_pairs():
    """Return ``(train_rows, eval_rows)``: lists of ``{"prompt", "chosen", "rejected"}``."""
    splits = _build()
    return _public(splits["train"]), _public(splits["eval"])


def write_demo_data(out_dir=DEFAULT_OUT) -> dict:
    """Write ``train.json`` and ``eval.json`` into ``out_dir`` and the eval split's answer key
    (``{"prompt", "answer"}`` for every question with one short right answer) beside it, as
    ``<out_dir>_eval_facts.json`` (inside, the loader would take it for a split); return row counts."""
    splits = _build()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    key = [{"prompt": r["prompt"], "answer": r["_fact"]} for r in splits["eval"] if r["_fact"]]
    files = {out.with_name(f"{out.name}_eval_facts.json"): key} | {
        out / f"{split}.json": _public(rows) for split, rows in splits.items()
    }
    for path, content in files.items():
        text = json.dumps(content, ensure_ascii=False, indent=1) + "\n"
        path.write_text(text, encoding="utf-8", newline="\n")
    for split, rows in splits.items():
        counts[split] = {
            "total": len(rows),
            **{lang: sum(r["_lang"] == lang for r in rows) for lang in LANGS},
            "rejected_kinds": dict(sorted(Counter(r["_kind"] for r in rows).items())),
        }
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python tools/demo_data.py", description="Write the bilingual demo preference data set."
    )
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help="output folder (default: the package's own data/demo/)"
    )
    args = parser.parse_args(argv)
    counts = write_demo_data(args.out)
    for split, c in counts.items():
        print(f"{split}: {c['total']} pairs (en {c['en']}, zh {c['zh']}); rejected kinds {c['rejected_kinds']}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
