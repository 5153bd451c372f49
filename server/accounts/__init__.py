"""Teams, users, API tokens and the admin endpoints that manage them."""
