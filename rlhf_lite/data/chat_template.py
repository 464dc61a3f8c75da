"""The Human/Assistant convention as a Jinja chat template, written into every exported tokenizer so
that `apply_chat_template`, `transformers serve` and vLLM format a conversation exactly as the data
layer does (conversations.flatten, rows.dialogue): turns "\\n\\nHuman: ..." / "\\n\\nAssistant: ...",
contents stripped, a system message opening the next human turn, EOS after a final answer (the text
reward and SFT training score), "\\n\\nAssistant:" as the generation prompt."""

from __future__ import annotations

import json

# {%- -%} everywhere: the template's own line breaks must not reach the text.
TEMPLATE = """{{- prefix -}}
{%- set ns = namespace(system='') -%}
{%- for message in messages -%}
    {%- if message['role'] == 'system' -%}
        {%- set ns.system = ns.system + message['content'] | trim + '\\n\\n' -%}
    {%- elif message['role'] == 'user' -%}
        {{- '\\n\\nHuman: ' + ns.system + message['content'] | trim -}}
        {%- set ns.system = '' -%}
    {%- elif message['role'] == 'assistant' -%}
        {{- '\\n\\nAssistant: ' + message['content'] | trim -}}
        {%- if loop.last and eos_token -%}{{- eos_token -}}{%- endif -%}
    {%- else -%}
        {{- raise_exception("role '" + message['role'] + "' is not system, user or assistant") -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '\\n\\nAssistant:' -}}{%- endif -%}"""


def prefix_tokens(tokenizer) -> str:
    """The special tokens `tokenizer` puts in front of every text (OPT's `</s>`, Llama's `<s>`), as text."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    head = full[: len(full) - len(plain)] if full[len(full) - len(plain) :] == plain else []
    return "".join(tokenizer.convert_ids_to_tokens(head))


def human_assistant_template(tokenizer) -> str:
    """TEMPLATE for `tokenizer`, opening with its prefix tokens: servers tokenize the rendered text
    without adding special tokens, and training saw them in front of every prompt."""
    return TEMPLATE.replace("{{- prefix -}}", "{{- " + json.dumps(prefix_tokens(tokenizer)) + " -}}", 1)


def set_chat_template(tokenizer, keep_own: bool):
    """`tokenizer` carrying the template its model trains in, to be exported with it: its own with the
    `chat_template` option, else the Human/Assistant one."""
    if not keep_own:
        tokenizer.chat_template = human_assistant_template(tokenizer)
    return tokenizer
