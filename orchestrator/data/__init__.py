"""Dataset readers, density targets, patches and synthetic crowds."""
