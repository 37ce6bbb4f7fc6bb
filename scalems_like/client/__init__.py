"""The client side: sessions, pilot and task handles, and the I/O thread that talks to agents."""
