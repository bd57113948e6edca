"""Run inside a network namespace of its own (``unshare -n``) by test_the_network_policy_holds.

The namespace's loopback also carries 169.254.169.254, the cloud metadata address, where a
canary HTTP server counts every request that reaches it. The real notify and webhook executors
are then asked to reach it directly, through a redirect and through IPv6 forms of the address.
Prints one JSON object: each attempt's status code and reason, and the canary's count.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc

from tests.integration.engine_process import free_port
from tests.integration.executors.executor_process import ExecutorProcess, failure, request

METADATA = "169.254.169.254"
hits: list[str] = []


class Canary(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"AccessKeyId": "leaked"}')

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class Redirect(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.send_response(302)
        self.send_header("Location", f"http://{METADATA}/latest/meta-data/")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
    server = ThreadingHTTPServer(address, handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def attempt(
    executor: ExecutorProcess, action_type: str, key: str, params: dict[str, object]
) -> str:
    with executor.stub() as stub:
        try:
            stub.ExecuteAction(request(action_type, key, params), timeout=30)
        except grpc.RpcError as error:
            found = failure(error)
            return f"{found.code.name} {found.reason}"
    return "OK"


def main(workdir: Path) -> None:
    serve((METADATA, 80), Canary)
    redirect_port = free_port()
    serve(("127.0.0.1", redirect_port), Redirect)
    results: dict[str, str] = {}
    notify = ExecutorProcess("notify", workdir).start()
    webhook = ExecutorProcess("webhook", workdir).start()
    try:
        urls = {
            "json to the metadata address": f"json://{METADATA}/latest/meta-data/",
            "form to the metadata address": f"form://{METADATA}/",
            "json redirected to it": f"json://127.0.0.1:{redirect_port}/",
            "NAT64 form": "json://[64:ff9b::a9fe:a9fe]/",
            "6to4 form": "json://[2002:a9fe:a9fe::]/",
            "IPv4-compatible form": "json://[::a9fe:a9fe]/",
        }
        for n, (what, url) in enumerate(urls.items()):
            params = {"url": url, "body": "hello"}
            results[f"notify: {what}"] = attempt(notify, "send-notification", f"n{n}", params)
        results["webhook: the metadata address"] = attempt(
            webhook, "call-webhook", "w1", {"url": f"http://{METADATA}/latest/meta-data/"}
        )
    finally:
        notify.stop()
        webhook.stop()
    print(json.dumps({"results": results, "canary_hits": hits}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
