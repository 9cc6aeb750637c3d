"""Signed QR tickets and their standard building blocks: Base45, COSE_Sign1 and CWT."""
