"""`python -m lexilab serve RUN_DIR ...`: trained runs behind a REST API and a web page.

    from lexilab.serve import check_run_dirs, create_app
    app = create_app(check_run_dirs(["results/quickstart/with_colour/seed-0"]))  # an ASGI app (uvicorn, TestClient)
"""
from lexilab.serve.app import create_app
from lexilab.serve.runs import check_run_dirs

__all__ = ["check_run_dirs", "create_app"]
