"""Files: optimizer checkpoints and rule files (TOML, JSON), written atomically.

Example:
    >>> from multiopt_lab.io.rulefile import rules_to_toml
    >>> print(rules_to_toml(["muon", "adamw"], ["ndim == 2"]).split("version = 1")[1].strip())
    [[group]]
    label = "muon"
    rule = 'ndim == 2'
    <BLANKLINE>
    [[group]]
    label = "adamw"
"""
