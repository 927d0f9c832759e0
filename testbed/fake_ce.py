"""Cost Explorer as AWS answers it, for the test bed (moto's `ce` backend reads no request).

`install()` replaces moto's `GetCostAndUsage` and adds `GetCostForecast`. Both then:

* answer an account that never enabled Cost Explorer with AWS's own error,
  `AccessDeniedException: User not enabled for cost explorer access` (not a DataUnavailableException),
  and an account whose data is not there yet (the first day after enabling) with
  `DataUnavailableException`;
* validate the request as AWS does, answering `ValidationException` for: a `TimePeriod` whose dates are
  not `YYYY-MM-DD` (times are for HOURLY only), whose start is not before its (exclusive) end, whose
  start is after today or more than 13 months before this month (AWS keeps 13 months and the current
  one), or whose end lies beyond the first day of next month; a missing or unknown `Granularity`; no
  or unknown `Metrics`; more than two `GroupBy`, an unknown group type or dimension key, a key grouped
  twice; a filter `Expression` that is not exactly one of And/Or/Not/Dimensions/Tags/CostCategories,
  an And/Or of fewer than two, a `Dimensions` key AWS does not know or without values, a `Tags` filter
  without a key; a forecast that starts before today or ends more than a year ahead, or a
  `PredictionIntervalLevel` outside 51–99;
* page by `NextPageToken` (`page_size` groups a page), answering `InvalidNextTokenException` for a
  token it did not give and `RequestChangedException` for a token reused with another request;
* record every request (operation, the request's JSON, the error code if any), so tests assert what a
  function asked for: `GET /_testbed/ce/requests`, `DELETE` clears.

What the account's bill is:

* `POST /_testbed/ce/bill {"items": [{"service", "usage_type", "amount", "tags": {k: v}, "month": "YYYY-MM"?}]}`
  sets the cost items. A request's filter and grouping are applied to them: `Tags` filters see only
  tag keys activated as cost-allocation tags (`active_tags` below; AWS counts tags only from their
  activation on), `Dimensions` filters match `SERVICE` / `USAGE_TYPE` / `REGION`. An item without
  `month` is in every month of the requested period.
* Without a bill, `GetCostAndUsage` answers from moto's own queue
  (`POST /moto-api/static/ce/cost-and-usage-results`), still validated, recorded and paged.
* `POST /_testbed/ce/account {"enabled": bool, "data_available": bool, "active_tags": [..], "page_size": n,
  "latency_s": x}` sets the account's state (defaults: enabled, data available, no active tags, 100
  groups a page, answers at once). `latency_s` holds every answer back that many real seconds (AWS's
  Cost Explorer takes seconds; a slow one must not outlast a function's deadline).
* `POST /_testbed/ce/forecasts {"forecasts": [{"result": {...}} | {"error": {"code", "message"}}]}`
  queues `GetCostForecast` answers; with none queued it answers `DataUnavailableException`, as AWS
  does early in a month. `POST /_testbed/ce/failures {"failures": [{"code", "message"}]}` makes the
  next `GetCostAndUsage` calls fail with those errors.

"Today" is the emulator's clock (`POST /_testbed/clock`).
"""

import datetime as dt
import hashlib
import json
import re
import threading
import time
from decimal import Decimal

_lock = threading.Lock()
_state: dict = {}


def _reset() -> None:
    _state.clear()
    _state.update(
        {
            "forecasts": [],
            "failures": [],
            "requests": [],
            "bill": None,
            "enabled": True,
            "data_available": True,
            "active_tags": set(),
            "page_size": 100,
            "latency_s": 0.0,
            "pages": {},
        }
    )


_reset()

GRANULARITIES = {"DAILY", "MONTHLY", "HOURLY"}
METRICS = {
    "AmortizedCost",
    "BlendedCost",
    "NetAmortizedCost",
    "NetUnblendedCost",
    "NormalizedUsageAmount",
    "UnblendedCost",
    "UsageQuantity",
}
FORECAST_METRICS = {
    "AMORTIZED_COST",
    "BLENDED_COST",
    "NET_AMORTIZED_COST",
    "NET_UNBLENDED_COST",
    "UNBLENDED_COST",
}
# The Dimension enum of the Cost Explorer API reference.
DIMENSIONS = {
    "AZ", "INSTANCE_TYPE", "LINKED_ACCOUNT", "LINKED_ACCOUNT_NAME", "OPERATION", "PURCHASE_TYPE", "REGION",
    "SERVICE", "SERVICE_CODE", "USAGE_TYPE", "USAGE_TYPE_GROUP", "RECORD_TYPE", "OPERATING_SYSTEM", "TENANCY",
    "SCOPE", "PLATFORM", "SUBSCRIPTION_ID", "LEGAL_ENTITY_NAME", "DEPLOYMENT_OPTION", "DATABASE_ENGINE",
    "CACHE_ENGINE", "INSTANCE_TYPE_FAMILY", "BILLING_ENTITY", "RESERVATION_ID", "RESOURCE_ID", "RIGHTSIZING_TYPE",
    "SAVINGS_PLANS_TYPE", "SAVINGS_PLAN_ARN", "PAYMENT_OPTION", "AGREEMENT_END_DATE_TIME_AFTER",
    "AGREEMENT_END_DATE_TIME_BEFORE", "INVOICING_ENTITY", "ANOMALY_TOTAL_IMPACT_ABSOLUTE",
    "ANOMALY_TOTAL_IMPACT_PERCENTAGE",
}
# The dimensions this fake can group and filter its bill by; others are valid but unsupported here.
BILL_DIMENSIONS = {"SERVICE": "service", "USAGE_TYPE": "usage_type", "REGION": "region"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


class CeError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _validation(message: str) -> CeError:
    return CeError("ValidationException", message)


def _today() -> dt.date:
    # freezegun replaces datetime.datetime, so this follows the emulator's clock.
    return dt.datetime.now(dt.timezone.utc).date()


def _month_start(d: dt.date, months: int = 0) -> dt.date:
    index = d.year * 12 + d.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _period(request: dict, granularity: str | None) -> tuple[dt.date, dt.date]:
    period = request.get("TimePeriod")
    if not isinstance(period, dict) or "Start" not in period or "End" not in period:
        raise _validation("TimePeriod with Start and End is required")
    dates = []
    for key in ("Start", "End"):
        value = period[key]
        if not isinstance(value, str) or not (DATE.match(value) or (granularity == "HOURLY" and DATE_TIME.match(value))):
            raise _validation(f"{key} date {value!r} is not in the format yyyy-MM-dd")
        try:
            dates.append(dt.date.fromisoformat(value[:10]))
        except ValueError as err:
            raise _validation(f"{key} date {value!r} is not a valid date") from err
    start, end = dates
    if start >= end:
        raise _validation("Start date (and hour) should be before end date (and hour)")
    return start, end


def _check_usage_period(start: dt.date, end: dt.date) -> None:
    today = _today()
    if start > today:
        raise _validation("Start date must be equal to or no later than the current date")
    oldest = _month_start(today, -13)
    if start < oldest:
        raise _validation(f"Start date {start} is older than the data Cost Explorer keeps (from {oldest})")
    latest = _month_start(today, 1)
    if end > latest:
        raise _validation(f"End date {end} is beyond the end of the current month ({latest}, exclusive)")


def _check_expression(expression, where: str = "Filter") -> None:  # noqa: ANN001
    if not isinstance(expression, dict):
        raise _validation(f"{where} must be an Expression object")
    present = [k for k in ("And", "Or", "Not", "Dimensions", "Tags", "CostCategories") if expression.get(k) is not None]
    if len(present) != 1:
        raise _validation(f"{where}: an Expression must have exactly one of And, Or, Not, Dimensions, Tags, CostCategories (got {present})")
    kind = present[0]
    value = expression[kind]
    if kind in ("And", "Or"):
        if not isinstance(value, list) or len(value) < 2:
            raise _validation(f"{where}.{kind} needs at least two expressions")
        for i, inner in enumerate(value):
            _check_expression(inner, f"{where}.{kind}[{i}]")
    elif kind == "Not":
        _check_expression(value, f"{where}.Not")
    elif kind == "Dimensions":
        if value.get("Key") not in DIMENSIONS:
            raise _validation(f"{where}.Dimensions: unknown dimension key {value.get('Key')!r}")
        if not value.get("Values"):
            raise _validation(f"{where}.Dimensions: Values must not be empty")
    elif kind == "Tags":
        if not value.get("Key"):
            raise _validation(f"{where}.Tags: Key is required")
        options = value.get("MatchOptions") or []
        if not value.get("Values") and "ABSENT" not in options:
            raise _validation(f"{where}.Tags: Values must not be empty unless MatchOptions is ABSENT")
    elif kind == "CostCategories" and not value.get("Key"):
        raise _validation(f"{where}.CostCategories: Key is required")


def _check_group_by(group_by) -> list[dict]:  # noqa: ANN001
    group_by = group_by or []
    if len(group_by) > 2:
        raise _validation("You can group by at most two dimensions, tags or cost categories")
    seen = set()
    for group in group_by:
        kind, key = group.get("Type"), group.get("Key")
        if kind not in ("DIMENSION", "TAG", "COST_CATEGORY"):
            raise _validation(f"GroupBy type {kind!r} is not DIMENSION, TAG or COST_CATEGORY")
        if not key:
            raise _validation("GroupBy key is required")
        if kind == "DIMENSION" and key not in DIMENSIONS:
            raise _validation(f"Group Definition dimension is invalid: {key!r}")
        if (kind, key) in seen:
            raise _validation(f"GroupBy {kind} {key} appears twice")
        seen.add((kind, key))
    return group_by


def _matches(item: dict, expression: dict | None) -> bool:
    if expression is None:
        return True
    if "And" in expression and expression["And"] is not None:
        return all(_matches(item, e) for e in expression["And"])
    if "Or" in expression and expression["Or"] is not None:
        return any(_matches(item, e) for e in expression["Or"])
    if "Not" in expression and expression["Not"] is not None:
        return not _matches(item, expression["Not"])
    if expression.get("Dimensions") is not None:
        d = expression["Dimensions"]
        field = BILL_DIMENSIONS.get(d["Key"])
        if field is None:
            raise _validation(f"the test bed's bill cannot filter by {d['Key']} (only {sorted(BILL_DIMENSIONS)})")
        return item.get(field, "") in d["Values"]
    if expression.get("Tags") is not None:
        t = expression["Tags"]
        # A tag counts only once activated as a cost-allocation tag; before that it is absent.
        tags = item.get("tags", {}) if t["Key"] in _state["active_tags"] else {}
        if "ABSENT" in (t.get("MatchOptions") or []) and t["Key"] not in tags:
            return True
        return t["Key"] in tags and tags[t["Key"]] in (t.get("Values") or [])
    raise _validation("the test bed's bill cannot filter by cost categories")


def _group_key(item: dict, group: dict) -> str:
    if group["Type"] == "DIMENSION":
        field = BILL_DIMENSIONS.get(group["Key"])
        if field is None:
            raise _validation(f"the test bed's bill cannot group by {group['Key']} (only {sorted(BILL_DIMENSIONS)})")
        return item.get(field, "")
    if group["Type"] == "TAG":
        tags = item.get("tags", {}) if group["Key"] in _state["active_tags"] else {}
        return f"{group['Key']}${tags.get(group['Key'], '')}"
    raise _validation("the test bed's bill cannot group by cost categories")


def _months(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    out = []
    cursor = start
    while cursor < end:
        month_end = min(_month_start(cursor, 1), end)
        out.append((cursor, month_end))
        cursor = month_end
    return out


def _from_bill(request: dict, start: dt.date, end: dt.date, group_by: list[dict], metrics: list[str]) -> list[dict]:
    results = []
    for first, last in _months(start, end):
        month = first.strftime("%Y-%m")
        items = [i for i in _state["bill"] if i.get("month", month) == month and _matches(i, request.get("Filter"))]
        sums: dict[tuple, Decimal] = {}
        for item in items:
            key = tuple(_group_key(item, g) for g in group_by)
            sums[key] = sums.get(key, Decimal(0)) + Decimal(str(item["amount"]))

        def metric(amount: Decimal) -> dict:
            return {m: {"Amount": str(amount), "Unit": "USD"} for m in metrics}

        entry = {"TimePeriod": {"Start": str(first), "End": str(last)}, "Estimated": last > _today()}
        if group_by:
            entry["Total"] = {}
            entry["Groups"] = [{"Keys": list(k), "Metrics": metric(v)} for k, v in sorted(sums.items())]
        else:
            entry["Total"] = metric(sum(sums.values(), Decimal(0)))
            entry["Groups"] = []
        results.append(entry)
    return results


def _paged(request: dict, results: list[dict]) -> dict:
    """One page of `results` (groups counted across months) and the token for the next."""
    signature = hashlib.sha256(json.dumps({k: v for k, v in request.items() if k != "NextPageToken"}, sort_keys=True).encode()).hexdigest()
    token = request.get("NextPageToken")
    if token:
        with _lock:
            page = _state["pages"].get(token)
        if page is None:
            raise CeError("InvalidNextTokenException", "The pagination token is invalid. Try again without a pagination token.")
        if page["signature"] != signature:
            raise CeError("RequestChangedException", "Your request parameters changed between pages. Try again with the old parameters or without a pagination token.")
        results, offset = page["results"], page["offset"]
    else:
        offset = 0
    flat = [(i, g) for i, r in enumerate(results) for g in (r.get("Groups") or [None])]
    size = _state["page_size"]
    chosen = flat[offset : offset + size]
    out = []
    for i, r in enumerate(results):
        groups = [g for j, g in chosen if j == i and g is not None]
        if any(j == i for j, _ in chosen):
            out.append({**r, "Groups": groups})
    answer = {"ResultsByTime": out, "DimensionValueAttributes": [], "GroupDefinitions": request.get("GroupBy") or []}
    if offset + size < len(flat):
        next_token = hashlib.sha256(f"{signature}:{offset + size}".encode()).hexdigest()[:32]
        with _lock:
            _state["pages"][next_token] = {"signature": signature, "results": results, "offset": offset + size}
        answer["NextPageToken"] = next_token
    return answer


def _check_account() -> None:
    if not _state["enabled"]:
        raise CeError("AccessDeniedException", "User not enabled for cost explorer access")
    if not _state["data_available"]:
        raise CeError("DataUnavailableException", "Data is not available. Please try to adjust the time period. If just enabled Cost Explorer, data might not be ingested yet")


def get_cost_and_usage(request: dict, moto_results) -> dict:  # noqa: ANN001
    """The answer to one `GetCostAndUsage` request, or `CeError`."""
    with _lock:
        failure = _state["failures"].pop(0) if _state["failures"] else None
    if failure is not None:
        raise CeError(failure["code"], failure["message"])
    _check_account()
    granularity = request.get("Granularity")
    if granularity not in GRANULARITIES:
        raise _validation(f"Granularity must be one of {sorted(GRANULARITIES)}, not {granularity!r}")
    metrics = request.get("Metrics") or []
    if not metrics:
        raise _validation("Metrics are required")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise _validation(f"Metrics {unknown} are not among {sorted(METRICS)}")
    start, end = _period(request, granularity)
    _check_usage_period(start, end)
    group_by = _check_group_by(request.get("GroupBy"))
    if request.get("Filter") is not None:
        _check_expression(request["Filter"])
    if request.get("NextPageToken"):
        return _paged(request, [])
    if _state["bill"] is None:
        results = moto_results()["ResultsByTime"]
    else:
        results = _from_bill(request, start, end, group_by, metrics)
    return _paged(request, results)


def get_cost_forecast(request: dict) -> dict:
    """The answer to one `GetCostForecast` request, or `CeError`."""
    _check_account()
    granularity = request.get("Granularity")
    if granularity not in ("DAILY", "MONTHLY"):
        raise _validation(f"Granularity must be DAILY or MONTHLY for a forecast, not {granularity!r}")
    if request.get("Metric") not in FORECAST_METRICS:
        raise _validation(f"Metric {request.get('Metric')!r} is not among {sorted(FORECAST_METRICS)}")
    level = request.get("PredictionIntervalLevel")
    if level is not None and not 51 <= int(level) <= 99:
        raise _validation("PredictionIntervalLevel must be between 51 and 99")
    start, end = _period(request, granularity)
    today = _today()
    if start < today:
        raise _validation("Start date must be equal to or later than the current date")
    if end > _month_start(today, 12):
        raise _validation("End date must be within 12 months of the current month")
    if request.get("Filter") is not None:
        _check_expression(request["Filter"])
    with _lock:
        item = _state["forecasts"].pop(0) if _state["forecasts"] else None
    if item is None:
        raise CeError("DataUnavailableException", "Insufficient amount of historical data to generate forecast.")
    if "error" in item:
        raise CeError(item["error"]["code"], item["error"]["message"])
    return item["result"]


def _recorded(operation: str, access_key_id: str, request: dict, answer):  # noqa: ANN001, ANN202
    entry = {"operation": operation, "access_key_id": access_key_id, "request": request, "error": None}
    try:
        return answer()
    except CeError as err:
        entry["error"] = err.code
        raise
    finally:
        with _lock:
            _state["requests"].append(entry)


def install() -> None:
    """Serve moto's Cost Explorer through this module."""
    from moto.ce.responses import CostExplorerResponse
    from moto.core.exceptions import JsonRESTError

    original = CostExplorerResponse.get_cost_and_usage

    def access_key(response) -> str:  # noqa: ANN001
        header = response.headers.get("Authorization", "")
        match = re.search(r"Credential=([^/]+)/", header)
        return match.group(1) if match else ""

    def answer(self, operation: str, compute) -> str:  # noqa: ANN001
        request = json.loads(self.body or "{}")
        with _lock:
            latency = _state["latency_s"]
        if latency:
            time.sleep(latency)
        try:
            return json.dumps(_recorded(operation, access_key(self), request, lambda: compute(request)))
        except CeError as err:
            raise JsonRESTError(err.code, err.message) from err

    def serve_cost_and_usage(self) -> str:  # noqa: ANN001
        return answer(self, "GetCostAndUsage", lambda request: get_cost_and_usage(request, lambda: json.loads(original(self))))

    def serve_cost_forecast(self) -> str:  # noqa: ANN001
        return answer(self, "GetCostForecast", get_cost_forecast)

    CostExplorerResponse.get_cost_and_usage = serve_cost_and_usage
    CostExplorerResponse.get_cost_forecast = serve_cost_forecast


def route(method: str, path: str, body: bytes) -> tuple[str, object] | None:
    """The `/_testbed/ce/...` routes; `None` for any other path."""
    if not path.startswith("/_testbed/ce/"):
        return None
    name = path.removeprefix("/_testbed/ce/")
    request = json.loads(body or b"{}") if method == "POST" else {}
    with _lock:
        if name in ("forecasts", "failures") and method == "POST":
            _state[name].extend(request[name])
            return "200 OK", {"queued": len(request[name])}
        if name == "bill" and method == "POST":
            items = request["items"]
            for item in items:
                for key in ("service", "usage_type", "amount"):
                    if key not in item:
                        raise ValueError(f"bill item without {key}: {item}")
                Decimal(str(item["amount"]))
            _state["bill"] = items
            return "200 OK", {"items": len(items)}
        if name == "account" and method == "POST":
            unknown = set(request) - {"enabled", "data_available", "active_tags", "page_size", "latency_s"}
            if unknown:
                raise ValueError(f"unknown account settings {sorted(unknown)}")
            for key in ("enabled", "data_available"):
                if key in request:
                    _state[key] = bool(request[key])
            if "active_tags" in request:
                _state["active_tags"] = set(request["active_tags"])
            if "page_size" in request:
                if int(request["page_size"]) < 1:
                    raise ValueError("page_size must be at least 1")
                _state["page_size"] = int(request["page_size"])
            if "latency_s" in request:
                if not 0 <= float(request["latency_s"]) <= 120:
                    raise ValueError("latency_s must be between 0 and 120")
                _state["latency_s"] = float(request["latency_s"])
            return "200 OK", {"latency_s": _state["latency_s"], "enabled": _state["enabled"], "data_available": _state["data_available"], "active_tags": sorted(_state["active_tags"]), "page_size": _state["page_size"]}
        if name == "requests" and method == "GET":
            return "200 OK", list(_state["requests"])
        if name == "requests" and method == "DELETE":
            _state["requests"].clear()
            return "200 OK", {}
    return "404 Not Found", {"error": f"no testbed route {method} {path}"}
