"""Pseudonymised research exports: wide and long CSV, Parquet and FHIR R4, with their dictionary.

A service-level package: it reads through `storage.exports`, writes files, and knows nothing of
Telegram or templates. Column definitions live once, in `bot.export.columns`.
"""
