"""Storage: SQL tables, the Repository of FHIR interactions, migrations."""
