"""The fixed prompts `prompt_eval.py` compares models on, in the spirit of DeepSpeed-Chat's
(a company, a child-level explanation, a poem, a fact, how something works, a why-question).
Bare questions: they are wrapped into "\\n\\nHuman: ...\\n\\nAssistant:" before generation."""

PROMPTS: dict[str, list[str]] = {
    "en": [
        "Please tell me about Microsoft in a few sentences.",
        "Explain the moon landing to a 6 year old in a few sentences.",
        "Write a short poem about a wise frog.",
        "Who was president of the United States in 1955?",
        "How does a telescope work?",
        "Why do birds migrate south for the winter?",
    ],
    "zh": [
        "请用几句话介绍一下微软。",
        "用几句话向一个6岁的孩子解释登月。",
        "写一首关于一只聪明的青蛙的短诗。",
        "1955年的美国总统是谁？",
        "望远镜是如何工作的？",
        "鸟类为什么要在冬天飞往南方？",
    ],
}
