"""How a question is put to a model: the chat template for instruct models, `Question:/Answer:` otherwise.

MEMO deliberately uses neither (raw `q + " " + prefix`); training, evaluation and probing use this.
"""

from __future__ import annotations

PLAIN_QUESTION = "Question: {question}\nAnswer: "


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def question_prompt(tokenizer, question: str) -> str:
    """The text that precedes the answer when `question` is asked."""
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
    return PLAIN_QUESTION.format(question=question)
