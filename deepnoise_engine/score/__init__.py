"""Scoring: well predictions of trained models (torch, ``score/inference.py``).

Importing this package stays torch-free. The job that scores a screen (score -> balance
-> report) is ``deepnoise_engine.workflows.score``.
"""
