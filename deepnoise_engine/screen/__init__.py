"""Screen data layer: data model, readers, synthetic screens, pack cache."""

