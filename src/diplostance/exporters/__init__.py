"""Exporters of trained model directories to other runtimes."""
