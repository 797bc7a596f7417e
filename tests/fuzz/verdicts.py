"""Each protocol's answer judged by its own form (see tests.interfaces for the forms)."""

from __future__ import annotations

from typing import Any

from podnet.errors import Reason
from tests.fuzz.outcomes import Outcome, Verdict, body_text, has_traceback, json_or_none
from tests.fuzz.wire import HTTPCase
from tests.interfaces import RawReply, ShimRun

REASONS = {r.value for r in Reason}
CNI_ERROR_KEYS = {"cniVersion", "code", "msg", "details"}


def _http_failure(reply: RawReply, deadline: float) -> Verdict | None:
    if not reply.closed:
        return Verdict(Outcome.hang, f"no complete answer within {deadline:g} s (got {reply.body[:80]!r})")
    if reply.status == 0:
        return Verdict(Outcome.hang, f"garbled: no HTTP status line in {reply.body[:80]!r}")
    if "Traceback (most recent call last)" in body_text(reply.body):
        return Verdict(Outcome.crash, f"a traceback in the reply: {reply.body[:300]!r}")
    return None


def cni_output(status: int, output: Any, command: str | None) -> Verdict:
    """What a CNI plugin printed and its exit status: a result, nothing, or a CNI error."""
    if status == 0:
        if command == "ADD":
            ok = isinstance(output, dict) and isinstance(output.get("ips"), list) and output["ips"]
        elif command == "VERSION":
            ok = isinstance(output, dict) and isinstance(output.get("supportedVersions"), list)
        else:
            ok = output is None
        return Verdict(Outcome.fine) if ok else Verdict(Outcome.hang, f"garbled: {command} succeeded with {output!r}")
    if not (
        isinstance(output, dict)
        and set(output) <= CNI_ERROR_KEYS
        and isinstance(output.get("code"), int)
        and isinstance(output.get("msg"), str)
        and isinstance(output.get("cniVersion"), str)
    ):
        return Verdict(Outcome.hang, f"garbled: exit {status} with {str(output)[:300]!r}, not a CNI error")
    if has_traceback(output["msg"]) or has_traceback(str(output.get("details", ""))):
        return Verdict(Outcome.crash, f"CNI code {output['code']}: {output['msg'][:400]}")
    return Verdict(Outcome.clean, f"CNI code {output['code']}: {output['msg'][:120]}")


def rest(case: HTTPCase, reply: RawReply, deadline: float, *, routed: bool) -> Verdict:
    """`routed`: the request reached the API's routes (else the HTTP layer refused it: a line or header
    too long for it, or a request no HTTP client writes; its 4xx are aiohttp's text, not the API's form)."""
    failed = _http_failure(reply, deadline)
    if failed is not None:
        return failed
    status = reply.status
    if (case.framing == "malformed" or not routed) and status >= 400 and not _api_error(reply):
        return Verdict(Outcome.clean if status < 500 else Outcome.crash, f"HTTP {status} from the HTTP layer")
    if case.method == "HEAD":  # no body, by HTTP's rules
        return Verdict(Outcome.crash if status >= 500 else Outcome.clean if status >= 400 else Outcome.fine)
    data = json_or_none(reply.body)
    if status >= 400:
        if not (
            isinstance(data, dict)
            and data.get("code") == status
            and isinstance(data.get("message"), str)
            and data.get("reason") in REASONS
            and reply.headers.get("content-type", "").startswith("application/json")
        ):
            return Verdict(Outcome.hang, f"garbled: HTTP {status}, not the API's error form: {reply.body[:200]!r}")
        if (status >= 500 and status != 503) or has_traceback(data["message"]):
            return Verdict(Outcome.crash, f"HTTP {status} {data['reason']}: {data['message'][:400]}")
        return Verdict(Outcome.clean, f"{status} {data['reason']}")
    if case.framing == "short":
        return Verdict(Outcome.unsafe, f"HTTP {status} for a body that never arrived in full")
    if reply.body and data is None:
        return Verdict(Outcome.hang, f"garbled: HTTP {status} with a body that is not JSON: {reply.body[:200]!r}")
    exit_status = reply.headers.get("podnet-cni-exit")
    if exit_status is not None:  # POST /v1/cni: what the plugin would print, and its exit status
        command = None
        inner = json_or_none(case.body)
        if isinstance(inner, dict) and isinstance(inner.get("env"), dict):
            command = inner["env"].get("CNI_COMMAND")
        return cni_output(int(exit_status), data, command)
    return Verdict(Outcome.fine)


def _api_error(reply: RawReply) -> bool:
    return reply.headers.get("content-type", "").startswith("application/json")


def plugin(reply: RawReply, deadline: float) -> Verdict:
    failed = _http_failure(reply, deadline)
    if failed is not None:
        return failed
    data = json_or_none(reply.body)
    if reply.status == 200:
        if not isinstance(data, dict):
            return Verdict(Outcome.hang, f"garbled: 200 with {reply.body[:200]!r}")
        if data.get("Err"):
            return Verdict(Outcome.hang, f"an Err in a 200 (dockerd ignores it): {data['Err'][:200]}")
        return Verdict(Outcome.fine)
    if not (400 <= reply.status < 600 and isinstance(data, dict) and isinstance(data.get("Err"), str) and data["Err"]):
        return Verdict(Outcome.hang, f"garbled: HTTP {reply.status}, not libnetwork's error form: {reply.body[:200]!r}")
    if has_traceback(data["Err"]):
        return Verdict(Outcome.crash, f"HTTP {reply.status}: {data['Err'][:400]}")
    return Verdict(Outcome.clean, f"{reply.status}: {data['Err'][:120]}")


SANITIZER_FINDINGS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def shim(run: ShimRun | None, command: str | None, limit: float) -> Verdict:
    if run is None:
        return Verdict(Outcome.hang, "the shim did not exit")
    found = [f for f in SANITIZER_FINDINGS if f in run.stderr]
    if run.status in (86, 87) or run.status < 0 or found:
        return Verdict(Outcome.crash, f"shim exit {run.status}: {run.stderr[-1500:]}")
    if "Traceback" in run.stderr:
        return Verdict(Outcome.crash, f"a traceback from the shim: {run.stderr[-800:]}")
    if run.elapsed > limit:
        return Verdict(Outcome.hang, f"took {run.elapsed:.1f} s, past its deadline of {limit:g} s")
    return cni_output(run.status, run.output, command)
