"""E-mail and other channels that are not Telegram."""
