"""Repository format (version 1): documents, listings, channels, signatures, hashing."""
