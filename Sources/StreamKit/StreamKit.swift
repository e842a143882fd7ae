// Placeholder file replaced by StreamKit's sources.
