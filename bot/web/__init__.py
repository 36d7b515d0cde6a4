"""The clinic web app: server-rendered pages for staff and, in webhook mode, Telegram's endpoint."""
