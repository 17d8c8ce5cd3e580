# paydr's start-up hook for moto_server (written by paydr, loaded through
# PYTHONPATH; see internal/local/moto). Five fixes, each announced on
# stderr (moto's log) once in force:
#
# 1. Speed. moto 5.2 delivers an EventBridge event to each target of a matching rule
# through EventTemplateParser.parse, which compiles eight JSONPath
# expressions with a fresh PLY parser every time (about 35 ms each, some
# 285 ms of CPU per event). At a drill's 5 payments a second that is most of
# a core of this machine, in a server that answers every other AWS call.
# jsonpath_ng's parse is a pure function of its string: memoizing it keeps
# each result identical and makes delivery take about a millisecond.
#
# 2. Signatures. Once moto enforces IAM it checks each request's SigV4
# signature, computing it over the request's body or, when the body is
# empty, over the parameters it parsed from the URL: so every signed GET,
# HEAD or DELETE of a REST service (Lambda GetFunctionConcurrency, Route 53
# GetHealthCheckStatus) is SignatureDoesNotMatch. A request without a body
# is signed over the empty payload; the hook computes it so.
#
# 3. Resources. moto 5.2 authorizes most services' actions (DynamoDB, SSM,
# EventBridge, Secrets Manager, KMS, Lambda, RDS, Route 53, CloudWatch)
# against the resource "*", because it does not work out which resource a
# request names. A policy statement that names its resources (as every
# statement of paydr's roles does) then never matches, and every request
# is AccessDenied. For a request moto authorizes against "*" the hook lets
# an Allow statement's Resource match: enforcement decides on the action,
# which is what moto can know. Requests moto authorizes against a real
# resource (IAM, STS AssumeRole, SQS, S3) are checked as before, and so are
# Deny statements and trust policies. Resource scoping is proven by paydr's
# static tests of the synthesized policies, not by the emulator.
#
# 4. Dispatch. moto 5.2 routes every request by testing its service against
# moto.backends.list_of_moto_modules(), which lists moto's package
# directory and stats each of its some 170 entries every time: about 1 ms
# of CPU per request, some 0.9 s of the 11-14 s moto spends on a paydr up.
# The list is fixed for the life of the process; the hook computes it once.
#
# 5. Responses in one write. werkzeug's development server (moto_server's)
# sends a response's status line and headers, then its body, each with a
# send of its own: a client gets the headers first and must read the body
# off the socket after. The AWS SDK for Go (smithy-go, the AWS provider's
# included) has a race that closes the connection just then on a loaded
# machine, and sends the request again: a create answered "already exists"
# (paydr's own clients avoid it, internal/sdkhttp; the provider cannot). The
# hook gives werkzeug's handler a buffered socket writer, which werkzeug
# flushes after each body write, so headers and a body of up to 8 KiB
# leave in one send and arrive in the client's first read. The interim
# "100 Continue" is flushed at once, as before.
import sys


def _paydr_memoize_jsonpath():
    try:
        import functools

        import jsonpath_ng.ext as ext
    except Exception as err:  # moto without jsonpath_ng: nothing to speed up
        print("paydr-moto-hook: jsonpath_ng not memoized: %s" % err, file=sys.stderr, flush=True)
        return
    if getattr(ext.parse, "_paydr_memoized", False):
        return
    memo = functools.lru_cache(maxsize=512)(ext.parse)
    memo._paydr_memoized = True
    ext.parse = memo
    print("paydr-moto-hook: jsonpath_ng.ext.parse memoized (EventBridge delivery)", file=sys.stderr, flush=True)


def _paydr_fix_signatures():
    try:
        from botocore.awsrequest import AWSRequest
        from moto.iam import access_control as ac
    except Exception as err:
        print("paydr-moto-hook: signature check not fixed: %s" % err, file=sys.stderr, flush=True)
        return
    base = getattr(ac, "IAMRequestBase", None)
    if base is None or not hasattr(base, "_create_aws_request"):
        print("paydr-moto-hook: signature check not fixed: moto.iam.access_control changed", file=sys.stderr, flush=True)
        return

    def _create_aws_request(self):
        signed = self._get_string_between("SignedHeaders=", ",", self._headers["Authorization"]).split(";")
        headers = self._create_headers_for_aws_request(signed, self._headers)
        data = self._body if self._method in ("GET", "HEAD", "DELETE") else (self._body or self._data)
        request = AWSRequest(method=self._method, url=self._path, data=data, headers=headers)
        request.context["timestamp"] = headers["X-Amz-Date"]
        return request

    base._create_aws_request = _create_aws_request
    print("paydr-moto-hook: SigV4 of requests without a body checked over the empty payload", file=sys.stderr, flush=True)


def _paydr_action_level_resources():
    try:
        from moto.iam import access_control as ac
    except Exception as err:
        print("paydr-moto-hook: resource matching not changed: %s" % err, file=sys.stderr, flush=True)
        return
    stmt = getattr(ac, "IAMPolicyStatement", None)
    if stmt is None or not hasattr(stmt, "is_action_permitted") or getattr(stmt, "_paydr_action_level", False):
        print("paydr-moto-hook: resource matching not changed: moto.iam.access_control changed", file=sys.stderr, flush=True)
        return
    original = stmt.is_action_permitted

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        st = self._statement
        if resource == "*" and principal is None and st.get("Effect") == "Allow" and st.get("Resource") and "NotResource" not in st:
            widened = dict(st)
            widened["Resource"] = "*"
            return original(stmt(widened), action, resource, principal, incoming_condition_values)
        return original(self, action, resource, principal, incoming_condition_values)

    stmt.is_action_permitted = is_action_permitted
    stmt._paydr_action_level = True
    print("paydr-moto-hook: Allow statements naming resources match requests authorized against \"*\" (action-level IAM)", file=sys.stderr, flush=True)


def _paydr_memoize_module_list():
    try:
        from moto import backends
    except Exception as err:
        print("paydr-moto-hook: module list not memoized: %s" % err, file=sys.stderr, flush=True)
        return
    if getattr(backends.list_of_moto_modules, "_paydr_memoized", False):
        return
    modules = tuple(backends.list_of_moto_modules())

    def list_of_moto_modules():
        return modules

    list_of_moto_modules._paydr_memoized = True
    backends.list_of_moto_modules = list_of_moto_modules
    print("paydr-moto-hook: moto's module list memoized (%d modules; request dispatch)" % len(modules), file=sys.stderr, flush=True)


def _paydr_one_write_responses():
    try:
        from werkzeug import serving
    except Exception as err:
        print("paydr-moto-hook: responses not written in one send: %s" % err, file=sys.stderr, flush=True)
        return
    handler = getattr(serving, "WSGIRequestHandler", None)
    if handler is None or not hasattr(handler, "run_wsgi") or getattr(handler, "_paydr_one_write", False):
        print("paydr-moto-hook: responses not written in one send: werkzeug.serving changed", file=sys.stderr, flush=True)
        return
    original = handler.run_wsgi

    def run_wsgi(self):
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
            del self.headers["Expect"]
        return original(self)

    # socketserver.StreamRequestHandler: 0 is an unbuffered writer, -1 a
    # buffered one; its finish() flushes what is left.
    handler.wbufsize = -1
    handler.run_wsgi = run_wsgi
    handler._paydr_one_write = True
    print("paydr-moto-hook: responses written in one send (status line, headers and body)", file=sys.stderr, flush=True)


def _paydr_chain():
    # Run the sitecustomize this one shadows, if the interpreter has one.
    import importlib.util
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        path = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("_paydr_shadowed_sitecustomize", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            return


_paydr_memoize_jsonpath()
_paydr_fix_signatures()
_paydr_action_level_resources()
_paydr_memoize_module_list()
_paydr_one_write_responses()
try:
    _paydr_chain()
except Exception as err:
    print("paydr-moto-hook: the shadowed sitecustomize failed: %s" % err, file=sys.stderr, flush=True)
