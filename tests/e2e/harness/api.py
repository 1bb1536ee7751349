"""A small client of Airflow's public REST API (/auth/token, /api/v2)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request


class ApiError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, body: str):
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:800]}")
        self.status = status
        self.body = body


class Airflow:
    def __init__(self, base: str, username: str, password: str):
        self.base = base.rstrip("/")
        self.username, self.password = username, password
        self.token: str | None = None

    def _call(self, method: str, path: str, body=None, auth: bool = True, accept="application/json"):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", accept)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, method, path, e.read().decode(errors="replace")) from None
        return json.loads(text) if text else None

    def login(self) -> None:
        res = self._call("POST", "/auth/token",
                         {"username": self.username, "password": self.password}, auth=False)
        self.token = res["access_token"]

    def get(self, path: str, **params):
        q = ("?" + urllib.parse.urlencode(params)) if params else ""
        return self._call("GET", path + q)

    def post(self, path: str, body):
        return self._call("POST", path, body)

    def patch(self, path: str, body):
        return self._call("PATCH", path, body)

    def delete(self, path: str):
        return self._call("DELETE", path)

    def set_variable(self, key: str, value: str) -> None:
        """Creates or updates an Airflow Variable (PATCH answers 404 for a new key)."""
        body = {"key": key, "value": value}
        try:
            self.patch(f"/api/v2/variables/{urllib.parse.quote(key, safe='')}", body)
        except ApiError as e:
            if e.status != 404:
                raise
            self.post("/api/v2/variables", body)

    # --- DAGs -----------------------------------------------------------------------

    def wait_dags(self, dag_ids: list[str], timeout: float) -> float:
        started = time.monotonic()
        missing = list(dag_ids)
        errors = None
        while time.monotonic() - started < timeout:
            listed = {d["dag_id"] for d in self.get("/api/v2/dags", limit=100)["dags"]}
            missing = [d for d in dag_ids if d not in listed]
            if not missing:
                return time.monotonic() - started
            time.sleep(2)
        try:
            errors = self.get("/api/v2/importErrors")
        except ApiError as e:
            errors = str(e)
        raise TimeoutError(f"DAGs not parsed after {timeout:.0f}s: {missing}; import errors: {errors}")

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        self.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
        body = {"logical_date": None}
        if conf is not None:
            body["conf"] = conf
        run = self.post(f"/api/v2/dags/{dag_id}/dagRuns", body)
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")["state"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        q = urllib.parse.quote(run_id, safe="")
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{q}/taskInstances")["task_instances"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        q = urllib.parse.quote(run_id, safe="")
        res = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{q}/taskInstances/{task_id}/logs/{try_number}",
                       full_content="true")
        content = res["content"]
        if isinstance(content, list):
            return "\n".join(json.dumps(c) if isinstance(c, dict) else str(c) for c in content)
        return str(content)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value",
             map_index: int = -1):
        q = urllib.parse.quote(run_id, safe="")
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{q}/taskInstances/{task_id}/xcomEntries/{key}",
                        deserialize="true", map_index=map_index)["value"]
