"""The local platform: all of Driftline on one machine, on moto, without AWS or Docker."""
