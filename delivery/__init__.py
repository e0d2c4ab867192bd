"""Service delivery (queue delivery): multi-step delivery workflows. Not built yet."""
