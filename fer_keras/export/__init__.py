"""Deployment: TFLite export of trained runs (PROTOCOL.md, 'Deployment')."""
