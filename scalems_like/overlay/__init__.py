"""The master/worker overlay: the master schedules tasks onto worker processes on the allocation's nodes."""
