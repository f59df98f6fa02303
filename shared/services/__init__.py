"""Services: the hub's behaviour. Each takes its ports in the constructor."""
