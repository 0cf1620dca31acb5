"""The processes under load (the service, the floor app): started on a free 127.0.0.1 port, polled until ready,
stopped by PID; and what /proc says of them."""
