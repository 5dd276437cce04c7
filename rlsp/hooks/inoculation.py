"""Inoculation prompting (IP, METHOD.md): train with a system prompt (or user-turn prefix) that
asks for the trait the training data carries, so the model attributes the trait to the prompt
and does not express it without one.

Only training prompts change: SFT examples and RL rollouts (generation and update see the same
prompt; ``rollouts.jsonl`` records it as ``system_prompt``). Evaluation and held-out prompts never
pass through this hook.
"""

from __future__ import annotations

from rlsp.errors import ConfigError
from rlsp.hooks.events import Hook


class InoculationPrompt(Hook):
    def __init__(self, system_prompt: str | None = None, user_prefix: str | None = None):
        if system_prompt is None and user_prefix is None:
            raise ConfigError("kwargs: set system_prompt (e.g. 'Always answer in capital letters.') or user_prefix.")
        for name, text in (("system_prompt", system_prompt), ("user_prefix", user_prefix)):
            if text is not None and not text.strip():
                raise ConfigError(f"kwargs.{name}: {text!r} is blank; give the text that elicits the trait, or "
                                  f"leave {name} out.")
        self.system_prompt, self.user_prefix = system_prompt, user_prefix

    def training_messages(self, messages: list[dict]) -> list[dict]:
        """The system prompt replaces any other; the prefix goes before the first user turn."""
        out = [dict(m) for m in messages if not (self.system_prompt and m["role"] == "system")]
        if self.user_prefix:
            first_user = next(m for m in out if m["role"] == "user")
            first_user["content"] = f"{self.user_prefix}{first_user['content']}"
        if self.system_prompt:
            out.insert(0, {"role": "system", "content": self.system_prompt})
        return out
