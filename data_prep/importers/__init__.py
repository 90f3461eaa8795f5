"""Importers: public FER datasets in their published formats -> the suite's folder layout."""

from . import affectnet, ckplus, fer2013_csv, ferplus, folders, jaffe, rafdb

IMPORTERS = {m.NAME: m for m in (fer2013_csv, ferplus, rafdb, affectnet, ckplus, jaffe, folders)}
