"""Shared contracts every stage uses: configuration, document schema, storage, datasets."""
