"""Tests of the weekly physician digest: rules, building, rendering, delivery, e-mail."""
