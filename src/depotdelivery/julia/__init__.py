"""Julia knowledge: formats, slugs, hashes, CPU targets, clone selection, staleness."""
