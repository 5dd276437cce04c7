"""Chat messages for an example: optional system prompt, then the templated user turn."""

from __future__ import annotations

from rlsp.config.schema import DataConfig
from rlsp.data.sources import Example


def chat_messages(example: Example, cfg: DataConfig, system_prompt: str | None = None) -> list[dict]:
    """Messages for one example; ``system_prompt`` overrides ``cfg.system_prompt`` when given.

    The override is how inoculation prompting swaps in a training-only system prompt.
    """
    system = system_prompt if system_prompt is not None else cfg.system_prompt
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": cfg.prompt_template.replace("{prompt}", example.prompt)})
    return messages
