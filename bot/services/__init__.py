"""Use cases shared by the Telegram bot, the CLI, the jobs and the terminal demo.

Services know neither Telegram nor Jinja: they take an `AppContext` and plain values and return
plain dataclasses.
"""
