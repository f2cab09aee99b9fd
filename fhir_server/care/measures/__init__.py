"""Quality measures: `Measure/[id]/$evaluate-measure` over the program's Measures (profiles/Measure-*.json).

Each Measure's logic is Python, one module per measure or family, registered here by the Measure's
canonical URL; the modules comment each criterion with the specification's wording in our own words.
"""
