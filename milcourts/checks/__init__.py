"""Checks of the model: validation on held-out figures, simulation, the break date, other estimators."""
