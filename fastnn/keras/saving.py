"""keras.saving: load_model (also in fastnn.keras.models, as in Keras)."""
from .models import load_model

__all__ = ["load_model"]
