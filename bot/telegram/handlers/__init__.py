"""Telegram handlers, one module per audience; `bot.app.handlers()` registers them in order.

Handlers are thin: parse the update, call one service, present, send.
"""
