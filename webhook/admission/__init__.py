"""The admission webhook: AdmissionReview codec, the mutate and validate handlers, the FastAPI
app, TLS and certificates."""
