"""Tracked AWS Lambda invocations for Airflow: the real outcome and the exact error.

See the package README for usage and the log record format shared with the functions.
"""

__version__ = "0.1.0"
