"""Registry fixtures (Debian's docker-registry on 127.0.0.1: plain, basic auth, TLS, token)."""
