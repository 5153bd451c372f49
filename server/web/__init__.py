"""Web pages: leaderboard, submission report, team page, review console, guides (Jinja2 + SVG plots)."""
