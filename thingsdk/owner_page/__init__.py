"""The owner's page (`thingsdk owner serve`): feed.py reads the broker as the owner and verifies
what it shows, view.py draws it, app.py serves it (Starlette, the `owner` extra)."""
