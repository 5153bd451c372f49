"""The public leaderboard: approved submissions, baselines and expert reference rows."""
