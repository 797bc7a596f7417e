"""CNI rules: the environment, the configuration, VERSION, and the form of every error."""

from __future__ import annotations

import json

from lab.conformance.cni.checks import expect_error, expect_ok
from lab.conformance.cni.context import Context
from lab.conformance.cni.spec import (
    DECODING_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    SEMVER,
    cite,
    error_problems,
)
from lab.conformance.model import Failed, Outcome, Rule

PARAMETERS = "§2 Parameters"
ERRORS = "§5 Error"


def _missing(ctx: Context, variable: str) -> Outcome:
    netns = ctx.kernel.new_pod()
    try:
        env = ctx.env("ADD", netns, ctx.container_id())
        env.pop(variable)
        call = ctx.run(env, json.dumps(ctx.conf()))
        return Outcome.ok(expect_error(call, INVALID_ENVIRONMENT, [variable]))
    finally:
        ctx.kernel.remove_pod(netns)


def command_missing(ctx: Context) -> Outcome:
    return _missing(ctx, "CNI_COMMAND")


def containerid_missing(ctx: Context) -> Outcome:
    return _missing(ctx, "CNI_CONTAINERID")


def netns_missing(ctx: Context) -> Outcome:
    return _missing(ctx, "CNI_NETNS")


def ifname_missing(ctx: Context) -> Outcome:
    return _missing(ctx, "CNI_IFNAME")


def _error_of(
    ctx: Context, stdin: str, code: int, names: list[str], *, container_id: str | None = None, command: str = "ADD"
) -> Outcome:
    netns = ctx.kernel.new_pod()
    try:
        call = ctx.run(ctx.env(command, netns, container_id or ctx.container_id()), stdin)
        return Outcome.ok(expect_error(call, code, names))
    finally:
        ctx.kernel.remove_pod(netns)


def command_unknown(ctx: Context) -> Outcome:
    return _error_of(ctx, json.dumps(ctx.conf()), INVALID_ENVIRONMENT, ["CNI_COMMAND"], command="FROB")


def containerid_invalid(ctx: Context) -> Outcome:
    return _error_of(ctx, json.dumps(ctx.conf()), INVALID_ENVIRONMENT, ["CNI_CONTAINERID"], container_id="-bad/id!")


def not_json(ctx: Context) -> Outcome:
    return _error_of(ctx, '{"cniVersion": "1.0.0", "name": ', DECODING_FAILURE, [])


def name_missing(ctx: Context) -> Outcome:
    conf = ctx.conf()
    del conf["name"]
    return _error_of(ctx, json.dumps(conf), INVALID_CONFIG, [])


def name_invalid(ctx: Context) -> Outcome:
    return _error_of(ctx, json.dumps(ctx.conf(name="-bad name/x")), INVALID_CONFIG, [])


def version_unsupported(ctx: Context) -> Outcome:
    return _error_of(ctx, json.dumps(ctx.conf(version="99.0.0")), INCOMPATIBLE_VERSION, [])


def version_reply(ctx: Context) -> Outcome:
    call = ctx.run({"CNI_COMMAND": "VERSION"}, json.dumps({"cniVersion": ctx.version}))
    expect_ok(call, "VERSION")
    out = call.output
    if not isinstance(out, dict):
        raise Failed("VERSION printed no JSON object", "{cniVersion, supportedVersions}", call.describe())
    problems = []
    if not isinstance(out.get("cniVersion"), str) or not SEMVER.fullmatch(out["cniVersion"]):
        problems.append(f"cniVersion {out.get('cniVersion')!r} is not a version")
    listed = out.get("supportedVersions")
    if not isinstance(listed, list) or not listed:
        problems.append(f"supportedVersions {listed!r} is not a non-empty list")
    elif not all(isinstance(v, str) and SEMVER.fullmatch(v) for v in listed):
        problems.append(f"supportedVersions {listed!r} holds something that is not a version")
    if problems:
        raise Failed("; ".join(problems), '{"cniVersion": "X.Y.Z", "supportedVersions": ["X.Y.Z", …]}', call.describe())
    return Outcome.ok(f"claims {', '.join(str(v) for v in listed or [])}")


def version_echo(ctx: Context) -> Outcome:
    call = ctx.run({"CNI_COMMAND": "VERSION"}, json.dumps({"cniVersion": ctx.version}))
    expect_ok(call, "VERSION")
    got = call.output.get("cniVersion") if isinstance(call.output, dict) else None
    if got != ctx.version:
        raise Failed(
            f"VERSION asked with cniVersion {ctx.version} answered {got!r}",
            f'"cniVersion": "{ctx.version}"',
            call.describe(),
        )
    return Outcome.ok()


def version_accepted(ctx: Context) -> Outcome:
    with ctx.attached() as a:
        got = a.result.get("cniVersion")
        if got != ctx.version:
            raise Failed(
                f"ADD at {ctx.version} answered a {got!r} result", f'"cniVersion": "{ctx.version}"', a.add.describe()
            )
        expect_ok(ctx.delete(a), f"DEL at {ctx.version}")
    return Outcome.ok()


def error_form(ctx: Context) -> Outcome:
    """Over every call the suite made of this subject (the rules before this one)."""
    calls = [c for c in ctx.history if c.plugin == ctx.subject.plugin]
    failures = [c for c in calls if c.status != 0]
    for call in calls:
        if call.status < 0:
            raise Failed(f"{call.command} did not answer", "every call answers", call.describe())
        if call.status == 0 and isinstance(call.output, dict) and "code" in call.output and "msg" in call.output:
            raise Failed(
                f"{call.command} printed an error but exited 0", "a non-zero exit status with an error", call.describe()
            )
        if call.status != 0:
            problems = error_problems(call.output) if call.output is not None else ["no JSON on stdout"]
            if problems:
                raise Failed(
                    f"{call.command} failed without the error structure: {'; '.join(problems)}",
                    '{"cniVersion", "code", "msg", "details"} on stdout',
                    call.describe(),
                )
    if not failures:
        return Outcome.cannot("no call of the run failed, so no error output was seen")
    return Outcome.ok(f"{len(failures)} error replies, all in form; {len(calls)} calls answered")


def error_version(ctx: Context) -> Outcome:
    """Over every error reply of the run: it says the protocol version, the one of the request."""
    errors = [c for c in ctx.history if c.plugin == ctx.subject.plugin and c.status > 0 and isinstance(c.output, dict)]
    if not errors:
        return Outcome.cannot("no call of the run failed, so no error output was seen")
    for call in errors:
        asked = _asked_version(call.stdin)
        got = call.output.get("cniVersion")
        if not isinstance(got, str) or not SEMVER.fullmatch(got):
            raise Failed(
                f"an error reply has no cniVersion ({got!r})",
                '{"cniVersion": "<the version in use>", …}',
                call.describe(),
            )
        if asked and asked in ctx.claimed and got != asked:
            raise Failed(
                f"an error to a {asked} request says cniVersion {got}", f'"cniVersion": "{asked}"', call.describe()
            )
    return Outcome.ok(f"{len(errors)} error replies")


def _asked_version(stdin: str) -> str:
    try:
        conf = json.loads(stdin)
    except ValueError:
        return ""
    version = conf.get("cniVersion") if isinstance(conf, dict) else None
    return version if isinstance(version, str) else ""


_CODE4 = "`4`|Invalid necessary environment variables, like CNI_COMMAND, CNI_CONTAINERID, etc. The error message must contain the names of invalid variables."

RULES: list[Rule[Context]] = [
    Rule("version.reply", "VERSION answers cniVersion and supportedVersions",
         cite("§2 VERSION; §5 VERSION Success", "version-success",
              "Plugins must output a JSON object with the following keys upon a `VERSION` operation: `cniVersion` … `supportedVersions`: A list of supported specification versions"),
         version_reply, always=True),
    Rule("version.echo", "VERSION's cniVersion is the one asked for",
         cite("§5 VERSION Success", "version-success", "`cniVersion`: The value of `cniVersion` specified on input"),
         version_echo, since="1.0.0", per_version=True),
    Rule("version.accepted", "every version VERSION lists is accepted for ADD and DEL",
         cite("§1 Version considerations", "version-considerations",
              "Plugins indicate their set of supported versions through the VERSION command"),
         version_accepted, per_version=True),
    Rule("version.unsupported", "a cniVersion it does not support is error 1",
         cite(ERRORS, "error", "`1`|Incompatible CNI version"), version_unsupported),
    Rule("env.command-missing", "no CNI_COMMAND is error 4 naming it", cite(ERRORS, "error", _CODE4), command_missing),
    Rule("env.command-unknown", "an unknown CNI_COMMAND is error 4 naming it", cite(ERRORS, "error", _CODE4), command_unknown),
    Rule("env.containerid-missing", "ADD without CNI_CONTAINERID is error 4 naming it",
         cite("§2 ADD", "add-add-container-to-network-or-apply-modifications",
              "Required environment parameters: `CNI_COMMAND` `CNI_CONTAINERID` `CNI_NETNS` `CNI_IFNAME`"),
         containerid_missing),
    Rule("env.netns-missing", "ADD without CNI_NETNS is error 4 naming it",
         cite("§2 ADD", "add-add-container-to-network-or-apply-modifications",
              "Required environment parameters: `CNI_COMMAND` `CNI_CONTAINERID` `CNI_NETNS` `CNI_IFNAME`"),
         netns_missing),
    Rule("env.ifname-missing", "ADD without CNI_IFNAME is error 4 naming it",
         cite("§2 ADD", "add-add-container-to-network-or-apply-modifications",
              "Required environment parameters: `CNI_COMMAND` `CNI_CONTAINERID` `CNI_NETNS` `CNI_IFNAME`"),
         ifname_missing),
    Rule("env.containerid-invalid", "a malformed CNI_CONTAINERID is error 4 naming it",
         cite(PARAMETERS, "parameters",
              "`CNI_CONTAINERID`: … Must start with an alphanumeric character, optionally followed by any combination of one or more alphanumeric characters, underscore (), dot (.) or hyphen (-)."),
         containerid_invalid, since="1.0.0"),
    Rule("config.not-json", "a configuration that is not JSON is error 6",
         cite(ERRORS, "error", "`6`|Failed to decode content. For example, failed to unmarshal network config from bytes"),
         not_json),
    Rule("config.name-missing", "a configuration without a name is error 7",
         cite("§1 Configuration format", "configuration-format",
              "A network configuration consists of a JSON object with the following keys: … `name` (string): Network name."),
         name_missing),
    Rule("config.name-invalid", "a network name with forbidden characters is error 7",
         cite("§1 Configuration format", "configuration-format",
              "`name` (string): … Must start with an alphanumeric character, optionally followed by any combination of one or more alphanumeric characters, underscore, dot (.) or hyphen (-)."),
         name_invalid, since="1.0.0"),
]  # fmt: skip

LAST: list[Rule[Context]] = [
    Rule("error.cniversion", "every error says its cniVersion, the request's",
         cite(ERRORS, "error", "Plugins should output a JSON object with the following keys if they encounter an error: `cniVersion`: The protocol version in use"),
         error_version),
    Rule("error.form", "every error is {code, msg, details} on stdout with a non-zero exit",
         cite("§2 Errors; §5 Error", "errors",
              "A plugin must exit with a return code of 0 on success, and non-zero on failure. If the plugin encounters an error, it should output an \"error\" result structure"),
         error_form),
]  # fmt: skip
