"""Everything a person reads: texts from `templates/`, button contents, charts, per audience."""
