"""Version-neutral domain vocabulary of the central system. Standard library only."""
