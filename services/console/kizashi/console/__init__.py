"""The console (port 8005): server-rendered pages over the services' data."""
