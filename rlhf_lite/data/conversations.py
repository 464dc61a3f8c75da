"""TRL's conversational format (fields holding lists of ``{"role", "content"}`` messages) as the
unified row's text: by default in the Human/Assistant convention the pipeline trains on, or, given
a tokenizer, as its chat template renders the conversation."""

from __future__ import annotations

from .rows import ASSISTANT, HUMAN, SkipRow

ROLES = {"user": HUMAN, "assistant": ASSISTANT}
ANSWERS = ("chosen", "rejected", "completion")


def is_conversation(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def _check(messages: list[dict], key: str) -> list[dict]:
    for i, m in enumerate(messages):
        if m["role"] not in ("system", *ROLES):
            raise SkipRow(f"field '{key}' message {i}: role '{m['role']}' is not system, user or assistant")
        if not isinstance(m.get("content"), str):
            raise SkipRow(f"field '{key}' message {i}: content is {type(m.get('content')).__name__}, not text")
    return messages


def _turns(messages: list[dict]) -> str:
    """The messages as Human/Assistant turns; a system message opens the first human turn."""
    text, system = "", ""
    for m in messages:
        if m["role"] == "system":
            system += m["content"].strip() + "\n\n"
        else:
            text += f"{ROLES[m['role']]} {(system if m['role'] == 'user' else '') + m['content'].strip()}"
            system = "" if m["role"] == "user" else system
    return text


def _prompt(prompt: list[dict], template) -> str:
    """The prompt's text, up to where the assistant's answer starts."""
    if _check(prompt, "prompt")[-1]["role"] != "user":
        raise SkipRow(f"field 'prompt' ends with a '{prompt[-1]['role']}' message, not the user's")
    if template is None:
        return _turns(prompt) + ASSISTANT
    return template.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)


def _answer(prompt: list[dict], answer: list[dict], key: str, template) -> str:
    """The answer's text after `_prompt(prompt)`; the answer must start with the assistant."""
    head = _prompt(prompt, template)
    if _check(answer, key)[0]["role"] != "assistant":
        raise SkipRow(f"field '{key}' starts with a '{answer[0]['role']}' message, not the assistant's")
    if template is None:
        return _turns(prompt + answer)[len(head) :]
    full = template.apply_chat_template(prompt + answer, tokenize=False)
    if not full.startswith(head):
        raise SkipRow(f"the chat template renders the prompt of field '{key}' differently alone and with the answer")
    tail = full[len(head) :].rstrip()
    eos = template.eos_token or ""
    return tail[: -len(eos)] if eos and tail.endswith(eos) else tail  # the pipeline appends the EOS


def flatten(row: dict, template=None) -> dict:
    """A row with conversational fields as text: `prompt` (the messages before the answer) plus any of
    chosen / rejected / completion; `messages` alone is SFT data (the last assistant message is the
    answer); `chosen` / `rejected` alone share their history, which becomes the prompt."""
    row = dict(row)
    if "prompt" not in row and is_conversation(row.get("messages")):
        messages = row.pop("messages")
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=0)
        if last == 0:
            raise SkipRow("field 'messages' has no assistant message after the prompt")
        row["prompt"], row["chosen"] = messages[:last], messages[last:]
    elif "prompt" not in row and is_conversation(row.get("chosen")) and is_conversation(row.get("rejected")):
        chosen, rejected = row["chosen"], row["rejected"]
        shared = next((i for i, (c, r) in enumerate(zip(chosen, rejected)) if c != r), min(len(chosen), len(rejected)))
        while shared and chosen[shared - 1].get("role") == "assistant":  # the answers start with the assistant
            shared -= 1
        if shared == 0:
            raise SkipRow("fields 'chosen' and 'rejected' share no prompt (implicit-prompt preference data)")
        row.update(prompt=chosen[:shared], chosen=chosen[shared:], rejected=rejected[shared:])
    prompt = row.get("prompt")
    if not is_conversation(prompt):
        return row
    for key in ANSWERS:
        if is_conversation(row.get(key)):
            row[key] = _answer(prompt, row[key], key, template)
    return {**row, "prompt": _prompt(prompt, template)}
