"""Data preparation for fer_keras: the BTFER recipe (crop, dedupe, clean, balance) and importers.

Every step reads a source folder and writes a new one; no step modifies a source file.
See data_prep/README.md (or the README's "Data preparation" section).
"""
