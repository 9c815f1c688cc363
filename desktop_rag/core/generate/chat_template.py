"""The chat template: one rendering of a model's conversation format, shared by generation and
adapter training (an adapter is trained on exactly the prompts it will answer).

A GGUF carries its template (``tokenizer.chat_template``, Jinja2). It comes from the file, so it
is untrusted: it is rendered in Jinja2's ``ImmutableSandboxedEnvironment`` (template injection
from GGUF metadata was a real llama-cpp-python vulnerability, CVE-2024-34359). A template that
does not parse falls back to ChatML, which SmolLM2 and most small instruct models use.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n'"
    " }}{% endif %}"
)


def compile_template(source: str | None) -> Any:
    """A sandboxed Jinja2 template of ``source`` (None or empty: ChatML); one that does not parse
    is logged and replaced by ChatML. Returns a ``jinja2.Template``."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(source or CHATML)
    except TemplateError as exc:
        log.warning("the model's chat template does not parse (%s); using ChatML", exc)
        return env.from_string(CHATML)


def render_chat(template: Any, messages: Sequence[dict[str, str]], bos: str, eos: str) -> str:
    """``messages`` (``{"role", "content"}`` dicts) plus the assistant's generation prompt.

    Raises:
        jinja2.exceptions.SecurityError: the template tried something the sandbox refuses.
        jinja2.exceptions.TemplateError: the template failed (e.g. its own ``raise_exception``).
    """
    return str(
        template.render(
            messages=list(messages), add_generation_prompt=True, bos_token=bos, eos_token=eos
        )
    )
