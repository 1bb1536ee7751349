"""Provider metadata: what Airflow's ``apache_airflow_provider`` entry point returns.

The keys follow Airflow's ``provider_info.schema.json`` ("How to create your own provider"
in the Airflow providers documentation): ``name`` and ``description`` are required; the
trigger module is listed so ``airflow providers triggers`` shows it.
"""

from __future__ import annotations

from typing import Any

from airflow_stack_lambda import __version__

_INTEGRATION = "AWS Lambda (tracked)"


def get_provider_info() -> dict[str, Any]:
    """The provider's metadata for Airflow's providers manager."""
    return {
        "package-name": "airflow-stack-lambda",
        "name": "airflow-stack tracked Lambda",
        "description": (
            "Invoke AWS Lambda functions and report their real outcome and exact error "
            "from their own log lines (correlation ID, start/end markers, error record)."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://docs.aws.amazon.com/lambda/latest/dg/welcome.html",
                "tags": ["aws"],
            }
        ],
        "operators": [
            {"integration-name": _INTEGRATION, "python-modules": ["airflow_stack_lambda.operators"]}
        ],
        "triggers": [
            {"integration-name": _INTEGRATION, "python-modules": ["airflow_stack_lambda.triggers"]}
        ],
    }
