"""The terminology kernel (terminology-service.html): pure functions over CodeSystem, ValueSet and
ConceptMap resources, with the resources found through a `Resolver` that the store provides.

- `codesystem.py`: a CodeSystem's concepts, properties and hierarchy ($lookup, $subsumes).
- `valueset.py`: expansion and membership ($expand, $validate-code, search's `:in`).
- `conceptmap.py`: translation ($translate).
"""
