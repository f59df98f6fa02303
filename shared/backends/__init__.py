"""Port backends. Azure SDKs are imported lazily, inside the Azure backends only."""
