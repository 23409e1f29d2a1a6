"""Helpers shared by the test modules (which never import each other): real servers and processes, databases,
clients, factories and the deployment tools."""
