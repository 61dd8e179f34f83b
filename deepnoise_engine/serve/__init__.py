"""The engine process (``deepnoise-engine serve``) and its torch-free client.

``from deepnoise_engine.serve.client import EngineClient`` is all the app needs; the
wire format is in :mod:`deepnoise_engine.serve.protocol` and docs/protocol.md.
"""
