"""Competition phases: which one is current, their windows and quotas, selection and who sees scores."""
