"""The agent: runs inside the pilot job, connects to the client, and hosts the master of the overlay."""
