"""Operating a challenge (issue 22): the queue everyone can see, the maintenance pause, compute budgets."""
