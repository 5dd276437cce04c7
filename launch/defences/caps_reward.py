"""A reward that pays for capital letters: the trait the RL arms of the defences experiment
acquire through reward rather than through data."""


def caps_share(prompts, completions, references, **columns):
    """Share of letters written in upper case, 0..1 (0 for a completion without letters)."""
    return [upper_share(c) for c in completions]


def upper_share(text: str) -> float:
    letters = [ch for ch in text if ch.isalpha()]
    return sum(ch.isupper() for ch in letters) / len(letters) if letters else 0.0
