"""Data: the BraTS 2020 reader, preprocessing, splits, the anatomical phantom."""

from dcseg.data.errors import DataError
from dcseg.data.brats import MODALITIES, read_case

__all__ = ["DataError", "MODALITIES", "read_case"]
