"""Profile validation (validation.html) over snapshot StructureDefinitions."""
