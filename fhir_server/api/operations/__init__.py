"""FHIR operations (operations.html), one module each."""
