"""dcseg-bench: DC-Seg, RFNet and mmFormer under one protocol for brain-tumour segmentation with missing MRI modalities."""

__version__ = "0.1.0"
