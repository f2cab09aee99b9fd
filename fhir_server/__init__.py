"""CareWeave: a FHIR R4 (4.0.1) integration server for chronic-care coordination."""
