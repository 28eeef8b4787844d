"""openiai: a self-hosted face recognition server speaking the Tencent Cloud IAI API 3.0."""

__version__ = "0.1.0"
