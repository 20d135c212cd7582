"""Layer 1, the model gateway: model configs, the one send seam (litellm, worker, fake),
the response cache, pacing, pricing, fallbacks and the embedded model."""
