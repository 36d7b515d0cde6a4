"""python-telegram-bot only: dependencies, update ordering, handlers, delivery, the tick job."""
