"""Importers that turn a packaged pretrained model into a Hugging Face folder."""
