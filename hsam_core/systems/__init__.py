"""One module per task: a simulator for the data, the incomplete physics, the default network."""
