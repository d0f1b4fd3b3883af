"""The business of Cutout in plain Python: no Reflex imports here."""
