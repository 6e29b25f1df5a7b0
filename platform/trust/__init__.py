"""The control channel's trust: Ed25519 keys and the signed envelope every agent message carries."""
