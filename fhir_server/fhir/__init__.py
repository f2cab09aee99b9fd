"""Pure kernel: the model pin, definitions, OperationOutcome errors and structural validation."""
