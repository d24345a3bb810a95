"""Files: optimizer checkpoints, rule files (TOML, JSON) and History files, written atomically.

The History files (``history_*`` modules) work on plain data (rows, run
metadata, frames, events): ``io`` sits below ``training`` and never imports it.
"""
