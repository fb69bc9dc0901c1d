"""The emulator's Athena runs queries: moto's Athena backend delegates to the DuckDB engine
(:mod:`driftline.local.athena`).

moto 5.2.5 marks every execution SUCCEEDED with 0 rows and runs no SQL. Guarded replacements, in the
style of :mod:`driftline.local.moto_hooks` (pinned moto, refuse to start when a hook point is gone):

- ``AthenaBackend.start_query_execution`` records the execution as moto does, resolves the output
  location (the workgroup's when it enforces its configuration, as Athena does) and starts the query;
- ``AthenaBackend.get_query_execution`` reports the engine's state instead of advancing moto's;
- ``AthenaBackend.stop_query_execution`` interrupts the query;
- ``AthenaResponse.get_query_execution`` adds ``StateChangeReason`` and ``Statistics``;
- ``AthenaResponse.get_query_results`` serves the engine's result pages (``NextToken``, ``MaxResults``).

Both the Athena API and Step Functions' ``arn:aws:states:::athena:startQueryExecution`` (moto's
interpreter forwards it to the emulator's Athena API) reach these. ``.sync`` is not supported by the
interpreter: workflows poll (Wait → GetQueryExecution → Choice).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the engine (DuckDB, pyarrow) loads only when the hook is installed
    from driftline.local.athena import AthenaEngine

__all__ = ["ATHENA_HOOK_POINTS", "AthenaDelegate", "athena_hook_points", "install_athena"]

ATHENA_HOOK_POINTS = (
    ("AthenaBackend", "start_query_execution"),
    ("AthenaBackend", "get_query_execution"),
    ("AthenaBackend", "get_query_results"),
    ("AthenaBackend", "stop_query_execution"),
    ("AthenaResponse", "get_query_execution"),
    ("AthenaResponse", "get_query_results"),
)


def athena_hook_points() -> list[tuple[Any, str]]:
    """(owner, attribute) of every moto method the hook replaces, for ``check_moto``."""
    from moto.athena.models import AthenaBackend
    from moto.athena.responses import AthenaResponse

    owners = {"AthenaBackend": AthenaBackend, "AthenaResponse": AthenaResponse}
    return [(owners[o], name) for o, name in ATHENA_HOOK_POINTS]


def _output_location(backend: Any, config: dict[str, Any] | None, workgroup: str | None) -> str | None:
    """The results prefix: the workgroup's if it enforces its configuration or the client gave none."""
    wg = backend.work_groups.get(workgroup or "primary")
    wg_config = (getattr(wg, "configuration", None) or {}) if wg is not None else {}
    wg_location = (wg_config.get("ResultConfiguration") or {}).get("OutputLocation")
    client_location = (config or {}).get("OutputLocation")
    if wg_location and (wg_config.get("EnforceWorkGroupConfiguration") or not client_location):
        return str(wg_location)
    return str(client_location) if client_location else None


def _invalid_request(message: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    return JsonRESTError("InvalidRequestException", message)


class AthenaDelegate:
    """The replacements, over one engine per account and region (made on first use by ``engine_for``)."""

    def __init__(self, engine_for: Callable[[str, str], AthenaEngine], originals: dict[str, Any]) -> None:
        from driftline.local.athena import ResultsError

        self.engine_for = engine_for
        self.originals = originals
        self.engines: dict[tuple[str, str], AthenaEngine] = {}
        self._lock = threading.Lock()
        self._results_error = ResultsError

    def engine(self, backend: Any) -> AthenaEngine:
        key = (str(backend.account_id), str(backend.region_name))
        with self._lock:
            if key not in self.engines:
                self.engines[key] = self.engine_for(*key)
            return self.engines[key]

    @staticmethod
    def known(backend: Any, exec_id: str) -> Any:
        execution = backend.executions.get(exec_id)
        if execution is None:
            raise _invalid_request(f"QueryExecution {exec_id} was not found")
        return execution

    def start_query_execution(
        self,
        backend: Any,
        query: str,
        context: Any,
        config: dict[str, Any],
        workgroup: str,
        execution_parameters: list[str] | None,
    ) -> str:
        if not isinstance(query, str) or not query:
            raise _invalid_request("QueryString is required (1 to 262144 characters)")
        if config is not None and not isinstance(config, dict):
            raise _invalid_request("ResultConfiguration must be an object")
        location = _output_location(backend, config, workgroup)
        config = dict(config or {})
        config.pop("OutputLocation", None)
        if location:
            config["OutputLocation"] = location
        qid: str = self.originals["start"](backend, query, context, config, workgroup, execution_parameters)
        backend.executions[qid].status = "QUEUED"
        database = context.get("Database") if isinstance(context, dict) else None
        self.engine(backend).start(
            query,
            database=database,
            output_location=location,
            workgroup=workgroup or "primary",
            query_id=qid,
            parameters=execution_parameters,
        )
        return qid

    def get_query_execution(self, backend: Any, exec_id: str) -> Any:
        execution = self.known(backend, exec_id)
        ours = self.engine(backend).execution(exec_id)
        if ours is not None:
            execution.status = ours.state
            execution.start_time = ours.submitted
            execution.end_time = ours.completed or ours.submitted
        return execution

    def stop_query_execution(self, backend: Any, exec_id: str) -> None:
        execution = self.known(backend, exec_id)
        self.engine(backend).stop(exec_id)
        ours = self.engine(backend).execution(exec_id)
        execution.status = ours.state if ours is not None else "CANCELLED"

    def get_query_results(self, backend: Any, exec_id: str) -> Any:
        raise _invalid_request("GetQueryResults is served by the local Athena engine (the API, not the backend)")

    def response_get_query_execution(self, response: Any) -> str:
        body = json.loads(self.originals["response_get"](response))
        ours = self.engine(response.athena_backend).execution(response._get_param("QueryExecutionId"))
        if ours is not None:
            qe = body["QueryExecution"]
            # moto's state model would report RUNNING as SUCCEEDED at once: the engine's state is the truth
            qe["Status"]["State"] = ours.state
            qe["Status"]["SubmissionDateTime"] = ours.submitted
            if ours.completed is None:
                qe["Status"].pop("CompletionDateTime", None)
            else:
                qe["Status"]["CompletionDateTime"] = ours.completed
            if ours.reason:
                qe["Status"]["StateChangeReason"] = ours.reason
            qe["Statistics"].update(
                {
                    "EngineExecutionTimeInMillis": ours.engine_ms,
                    "TotalExecutionTimeInMillis": ours.engine_ms,
                    "DataScannedInBytes": ours.scanned_bytes,
                }
            )
            if ours.output_location:
                qe["ResultConfiguration"] = {
                    **(qe.get("ResultConfiguration") or {}),
                    "OutputLocation": ours.output_location,
                }
        return json.dumps(body)

    def response_get_query_results(self, response: Any) -> str:
        exec_id = response._get_param("QueryExecutionId")
        self.known(response.athena_backend, exec_id)
        try:
            page = self.engine(response.athena_backend).results(
                exec_id, response._get_param("NextToken"), response._get_param("MaxResults")
            )
        except self._results_error as e:
            raise _invalid_request(str(e)) from None
        return json.dumps(page)


@contextmanager
def install_athena(engine_for: Callable[[str, str], AthenaEngine]) -> Iterator[AthenaDelegate]:
    """Delegate moto's Athena to the local engines while the context is open."""
    from moto.athena.models import AthenaBackend
    from moto.athena.responses import AthenaResponse

    from driftline.local.moto_hooks import check_moto

    check_moto()
    saved = {(owner, name): getattr(owner, name) for owner, name in athena_hook_points()}
    hook = AthenaDelegate(
        engine_for,
        {
            "start": saved[(AthenaBackend, "start_query_execution")],
            "response_get": saved[(AthenaResponse, "get_query_execution")],
        },
    )
    for owner, name in saved:
        method = getattr(hook, name if owner is AthenaBackend else f"response_{name}")
        setattr(owner, name, _unbound(method))
    try:
        yield hook
    finally:
        for (owner, name), fn in saved.items():
            setattr(owner, name, fn)
        for engine in hook.engines.values():
            engine.shutdown()


def _unbound(method: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function moto's class can hold: ``self`` (the backend or response) passed on."""

    def replacement(owner_self: Any, *args: Any, **kwargs: Any) -> Any:
        return method(owner_self, *args, **kwargs)

    return replacement
