"""stafet: data integration and secure exchange for Danish youth education networks."""
