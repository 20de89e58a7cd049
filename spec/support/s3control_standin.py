#!/usr/bin/env python3
"""A stand-in for S3 Control's CreateJob and DescribeJob (moto has neither),
on loopback, for spec/e2e/batch_ops_spec.lua.

    s3control_standin.py DIR

Listens on 127.0.0.1 on a free port, written to DIR/port. Every request is
appended to DIR/requests.jsonl as {method, path, headers, body, model}, where
`model` is the verdict of checking it against botocore's S3 Control service
model: "ok", a list of problems, or "skipped: <why>" where botocore is absent.
The check: the operation by method and URI template, the account header, the
XML body's root element and namespace, every element a member of its shape
(lists of <member>, maps of <entry><key/><value/>), then botocore's own
parameter validation (required members, types, lengths, ranges).

CreateJob answers a new job id; DescribeJob answers DIR/jobs/<id>.json
({Status, Total, Succeeded, Failed}, written by the spec) as AWS's XML, or
NoSuchJob.
"""
import json
import os
import re
import sys
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NS = "http://awss3control.amazonaws.com/doc/2018-08-20/"

try:
    import botocore.session
    from botocore.validate import ParamValidator
    MODEL = botocore.session.get_session().get_service_model("s3control")
except ImportError as e:  # the spec reports the model check skipped
    MODEL = None
    MISSING = "botocore is not installed (%s)" % e


def local(tag):
    return tag.split("}", 1)[-1]


def from_xml(shape, el, where, problems):
    """The value of element el read as the model's shape."""
    kind = shape.type_name
    if kind == "structure":
        by_name = {m.serialization.get("name", n): n for n, m in shape.members.items()}
        out = {}
        for child in el:
            name = by_name.get(local(child.tag))
            if name is None:
                problems.append("%s: <%s> is not a member of %s" % (where, local(child.tag), shape.name))
                continue
            out[name] = from_xml(shape.members[name], child, where + "." + name, problems)
        return out
    if kind == "list":
        tag = shape.member.serialization.get("name", "member")
        items = []
        for child in el:
            if local(child.tag) != tag:
                problems.append("%s: <%s> in a list of <%s>" % (where, local(child.tag), tag))
            items.append(from_xml(shape.member, child, where + "[]", problems))
        return items
    if kind == "map":
        out = {}
        for entry in el:
            parts = {local(c.tag): c for c in entry}
            if local(entry.tag) != "entry" or set(parts) != {"key", "value"}:
                problems.append("%s: a map entry is <entry><key/><value/></entry>" % where)
                continue
            out[parts["key"].text or ""] = from_xml(shape.value, parts["value"], where + "{}", problems)
        return out
    text = el.text or ""
    if kind == "boolean":
        if text not in ("true", "false"):
            problems.append("%s: %r is not a boolean" % (where, text))
        return text == "true"
    if kind in ("integer", "long"):
        if not re.fullmatch(r"-?\d+", text):
            problems.append("%s: %r is not an integer" % (where, text))
            return 0
        return int(text)
    return text


def operation_of(method, path):
    for name in MODEL.operation_names:
        op = MODEL.operation_model(name)
        if op.http["method"] != method:
            continue
        uri = op.http["requestUri"].split("?")[0]
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(uri)) + "$"
        m = re.match(pattern, path)
        if m:
            return op, m.groupdict()
    return None, None


def check(method, path, headers, body):
    if MODEL is None:
        return "skipped: " + MISSING
    op, labels = operation_of(method, path.split("?")[0])
    if op is None:
        return ["no S3 Control operation is %s %s" % (method, path)]
    problems, params = [], {}
    shape = op.input_shape
    for name, member in shape.members.items():
        loc = member.serialization.get("location")
        if loc == "header" and member.serialization["name"].lower() in headers:
            params[name] = headers[member.serialization["name"].lower()]
        elif loc == "uri":
            params[name] = labels.get(member.serialization.get("name", name))
    if body:
        try:
            root = ET.fromstring(body)
        except ET.ParseError as e:
            return ["the body is not XML: %s" % e]
        want = shape.serialization.get("name")
        if root.tag != "{%s}%s" % (NS, want):
            problems.append("the root element is %s, not {%s}%s" % (root.tag, NS, want))
        payload = {n: m for n, m in shape.members.items() if "location" not in m.serialization}
        sub = type("S", (), {})()
        sub.type_name, sub.name, sub.members = "structure", shape.name, payload
        params.update(from_xml(sub, root, op.name, problems))
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        problems.append(report.generate_report())
    return problems or "ok"


def job_xml(job_id, state):
    job = ET.Element("Job")
    for tag, value in (("JobId", job_id), ("Status", state["Status"]), ("Priority", "10")):
        ET.SubElement(job, tag).text = value
    p = ET.SubElement(job, "ProgressSummary")
    for tag, key in (("TotalNumberOfTasks", "Total"), ("NumberOfTasksSucceeded", "Succeeded"),
                     ("NumberOfTasksFailed", "Failed")):
        ET.SubElement(p, tag).text = str(state.get(key, 0))
    root = ET.Element("DescribeJobResult", xmlns=NS)
    root.append(job)
    return ET.tostring(root)


class Handler(BaseHTTPRequestHandler):
    dir = "."
    lock = threading.Lock()
    jobs = 0

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def record(self, body):
        headers = {k.lower(): v for k, v in self.headers.items()}
        entry = {"method": self.command, "path": self.path, "headers": headers,
                 "body": body.decode("utf-8", "replace"),
                 "model": check(self.command, self.path, headers, body)}
        with Handler.lock, open(os.path.join(Handler.dir, "requests.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")

    def error(self, status, code, message):
        self.answer(status, ("<Error><Code>%s</Code><Message>%s</Message></Error>" % (code, message)).encode())

    def do_POST(self):
        body = self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 1 << 20))
        self.record(body)
        if self.path != "/v20180820/jobs":
            return self.error(404, "NotFound", "no such operation here")
        with Handler.lock:
            Handler.jobs += 1
            job_id = "standin-job-%04d" % Handler.jobs
        self.answer(200, ('<CreateJobResult xmlns="%s"><JobId>%s</JobId></CreateJobResult>' % (NS, job_id)).encode())

    def do_GET(self):
        self.record(b"")
        m = re.fullmatch(r"/v20180820/jobs/([A-Za-z0-9_-]{1,64})", self.path)
        state_file = m and os.path.join(Handler.dir, "jobs", m.group(1) + ".json")
        if not state_file or not os.path.exists(state_file):
            return self.error(404, "NoSuchJob", "no such job")
        with open(state_file) as f:
            self.answer(200, job_xml(m.group(1), json.load(f)))


def main():
    Handler.dir = sys.argv[1]
    os.makedirs(os.path.join(Handler.dir, "jobs"), exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(os.path.join(Handler.dir, "port.tmp"), "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(os.path.join(Handler.dir, "port.tmp"), os.path.join(Handler.dir, "port"))
    print("port %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
