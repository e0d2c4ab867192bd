"""Service delivery (queue delivery): a won lead is delivered through a run of ordered steps, each its own job."""
