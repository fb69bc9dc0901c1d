"""``driftline demo``: the whole story on the local platform (see :mod:`.story`)."""
