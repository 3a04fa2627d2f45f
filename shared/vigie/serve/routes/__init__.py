"""One router per resource of a prediction service (design.md section 2)."""
