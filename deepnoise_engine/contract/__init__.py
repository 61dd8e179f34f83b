"""The engine's contract: what the steps, the engine process and the app agree on.

Torch-free and Qt-free; the lowest layer of the engine (imports no step). The app uses
these same types.
"""

from deepnoise_engine.contract.progress import Cancelled, EventSink, Reporter

__all__ = ["Cancelled", "EventSink", "Reporter"]
