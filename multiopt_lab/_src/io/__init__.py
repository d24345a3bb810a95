"""Files: optimizer checkpoints, rule files (TOML, JSON) and History files, written atomically.

The History files (``history_*`` modules) work on plain data (rows, run
metadata, frames, events): ``io`` sits below ``training`` and never imports it.

Example:
    >>> from multiopt_lab import rules_to_toml
    >>> print(rules_to_toml(["muon", "adamw"], ["ndim == 2"]).split("version = 1")[1].strip())
    [[group]]
    label = "muon"
    rule = 'ndim == 2'
    <BLANKLINE>
    [[group]]
    label = "adamw"
"""
