"""Widget-free controllers behind the live front end.

Rule drafts (parse and assign what the user typed), the applier (apply
new rules between two steps), watchers of an optimizer's version,
debouncing of keystrokes and the monitor's redraw pacing. Nothing here
imports ipywidgets, so all of it is tested without a browser or a kernel.
"""
