"""JSON Schemas of stafet packages."""
