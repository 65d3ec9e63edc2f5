"""Monitoring: drift rules over the prediction log, and the reports people read (JSON and HTML with plots)."""
