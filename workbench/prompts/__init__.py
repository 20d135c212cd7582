"""Layer 2, the prompt platform: templates, the registry (versions, aliases, approval,
audit) and promotion."""
