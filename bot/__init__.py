"""moviebot: movie recommendations for a Discord server."""
