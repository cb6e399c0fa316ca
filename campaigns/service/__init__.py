"""The support side of retention: service points, incidents, satisfaction surveys."""
