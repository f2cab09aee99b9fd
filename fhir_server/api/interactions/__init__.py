"""One module per FHIR interaction (http.html), each a handler `(request, context, ...) -> FhirResponse`."""
