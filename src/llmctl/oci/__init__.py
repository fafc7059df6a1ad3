"""OCI building blocks: reference grammar, media types, descriptors and manifests, the on-disk layout."""
