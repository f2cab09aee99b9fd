"""HTTP-free FHIR dispatch, batch/transaction, and the thin FastAPI adapter."""
