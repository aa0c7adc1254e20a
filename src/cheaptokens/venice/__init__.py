"""Venice.ai: the types the shop uses, the HTTP client and the local sandbox emulator."""
