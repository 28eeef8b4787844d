"""HTTP layer: protocol parsing, signature auth, dispatch and the Response envelope."""
