"""Jobs that compose several steps: train a screen (the trainer with the plate prior
from balance) and score a screen (score -> balance -> report). No other layer composes.
"""
