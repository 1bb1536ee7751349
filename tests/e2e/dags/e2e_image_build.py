"""Uses what the image built in the account adds (shape `secrets`, airflow.build with
tests/fixtures/image; tests/e2e/test_image_build_e2e.py): a requirement installed by the
build's install script (`humanize`) and a module of its plugins folder
(`stack_example_plugin`). Both are imported inside the task, so the file parses in the
shapes without the build too."""

import pendulum
from airflow.sdk import dag, task


# No retries: see e2e_python.py (Spot workers get one retry by default).
@dag(dag_id="e2e_image_build", schedule=None, start_date=pendulum.datetime(2025, 1, 1),
     catchup=False, tags=["e2e"], default_args={"retries": 0})
def e2e_image_build():
    @task
    def use_requirement_and_plugin() -> dict:
        import humanize
        from stack_example_plugin import natural_size

        size = natural_size(1_500_000)
        print(f"E2E-MARKER e2e_image_build humanize={humanize.__version__} size={size}")
        return {"size": size, "humanize_file": humanize.__file__}

    use_requirement_and_plugin()


e2e_image_build()
