"""Trainer hooks: code that runs at named events of ``rlsp train`` and ``rlsp sft`` (around
generation, forward passes, backward passes and optimizer steps), given the unwrapped policy.

A recipe lists them under ``hooks:`` as ``package.module:Class`` or ``path/to/file.py:Class``
with keyword arguments; see ``rlsp.hooks.events.Hook`` for the events and what each receives.
"""

from rlsp.hooks.events import EVENTS, EventContext, Hook, HookRunner, build_hooks

__all__ = ["EVENTS", "EventContext", "Hook", "HookRunner", "build_hooks"]
