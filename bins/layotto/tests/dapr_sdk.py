"""The unmodified Dapr Python SDK (PyPI `dapr`) against layotto-rs.

Run by tests/dapr_sdk.rs with DAPR_GRPC_PORT and DAPR_HTTP_PORT pointing at
the runtime. Prints `SUBSCRIBED` once its configuration subscription is
open (the test then changes the item), and `OK` when every check passed;
any failed check raises, so the exit status is not 0.
"""

import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._response import UnlockResponseStatus
from dapr.clients.grpc._state import StateItem

STATE, PUBSUB, LOCK = "state_demo", "pub_subs_demo", "lock_demo"
CONFIG, SECRETS = "config_demo", "secret_demo"


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def state(d):
    key = f"py-{uuid.uuid4().hex}"
    d.save_state(STATE, key, "v1")
    first = d.get_state(STATE, key)
    check(first.data == b"v1" and first.etag, f"get_state after save: {first.data!r} {first.etag!r}")
    d.save_state(STATE, key, "v2", etag=first.etag)
    try:
        d.save_state(STATE, key, "v3", etag=first.etag)
        raise AssertionError("a stale etag must be refused")
    except DaprGrpcError as e:
        check(e.code().name == "ABORTED", f"stale etag code: {e.code()}")
        check(e.error_code() == "DAPR_STATE_ETAG_MISMATCH", f"stale etag reason: {e.error_code()}")
    check(d.get_state(STATE, key).data == b"v2", "the refused write changed nothing")
    check(d.get_state(STATE, f"missing-{key}").data == b"", "a missing key is empty data")

    keys = [f"{key}-{i}" for i in range(3)]
    d.save_bulk_state(STATE, [StateItem(key=k, value=k) for k in keys])
    items = d.get_bulk_state(STATE, keys=keys).items
    check(sorted(i.data for i in items) == sorted(k.encode() for k in keys), f"bulk: {items}")
    d.execute_state_transaction(
        STATE,
        [
            TransactionalStateOperation(key=keys[0], data="t", operation_type=TransactionOperationType.upsert),
            TransactionalStateOperation(key=keys[1], operation_type=TransactionOperationType.delete),
        ],
    )
    check(d.get_state(STATE, keys[0]).data == b"t", "transaction upsert")
    check(d.get_state(STATE, keys[1]).data == b"", "transaction delete")
    d.delete_state(STATE, keys[0])
    check(d.get_state(STATE, keys[0]).data == b"", "delete_state")


def lock(d):
    resource = f"py-{uuid.uuid4().hex}"
    with d.try_lock(LOCK, resource, "alice", 30) as held:
        check(held.success, "a free lock is acquired")
        check(not d.try_lock(LOCK, resource, "bob", 30).success, "a held lock is not")
    # Leaving the `with` block unlocked it.
    check(d.unlock(LOCK, resource, "alice").status == UnlockResponseStatus.lock_does_not_exist, "unlocked")
    d.try_lock(LOCK, resource, "alice", 30)
    check(d.unlock(LOCK, resource, "bob").status == UnlockResponseStatus.lock_belongs_to_others, "not bob's")
    check(d.unlock(LOCK, resource, "alice").status == UnlockResponseStatus.success, "alice unlocks")


def metadata_secrets_publish(d):
    d.set_metadata("sdk", "python")
    meta = d.get_metadata()
    check(meta.application_id == "dapr-sdk-app", f"app id: {meta.application_id}")
    check(meta.extended_metadata.get("sdk") == "python", f"extended: {meta.extended_metadata}")
    kinds = {(c.name, c.type) for c in meta.registered_components}
    check(("state_demo", "state.in-memory") in kinds, f"components: {kinds}")
    secret = d.get_secret(SECRETS, "PATH").secret
    check(secret.get("PATH"), f"secret: {secret}")
    d.publish_event(PUBSUB, "orders", data=json.dumps({"id": 1}), data_content_type="application/json")


def streaming_subscription(d):
    topic = f"py-stream-{uuid.uuid4().hex}"
    sub = d.subscribe(PUBSUB, topic)
    try:
        d.publish_event(PUBSUB, topic, data=json.dumps({"n": 7}), data_content_type="application/json")
        message = sub.next_message()
        check(message is not None and message.topic() == topic, f"streamed message: {message}")
        # JSON data travels inside the CloudEvent, so it comes back as JSON, not byte for byte.
        check(json.loads(message.raw_data()) == {"n": 7}, f"streamed data: {message.raw_data()!r}")
        sub.respond_success(message)
    finally:
        sub.close()


def serve_app(port, name, events):
    """A Dapr-style HTTP app: echoes invocations (naming itself), lists one
    subscription at /dapr/subscribe and records the CloudEvents posted to it."""

    class App(BaseHTTPRequestHandler):
        def reply(self, payload, status=200):
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/dapr/subscribe":
                self.reply([{"pubsubname": PUBSUB, "topic": f"sdk-{name}", "route": "/events"}])
            else:
                self.reply({"app": name, "verb": "GET", "path": self.path})

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if self.path == "/events":
                events.append((self.headers.get("content-type"), json.loads(body)))
                self.reply({"status": "SUCCESS"})
            else:
                self.reply({"app": name, "verb": "POST", "path": self.path, "body": body.decode()})

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def invocation(d):
    resp = d.invoke_method("dapr-sdk-app", "orders/7", data=b"ping", http_verb="POST", http_querystring=(("q", "1"),))
    echo = json.loads(resp.data)
    check(echo == {"app": "own", "verb": "POST", "path": "/orders/7?q=1", "body": "ping"}, f"own app: {echo}")
    # The app behind the second runtime, reached through both runtimes.
    resp = d.invoke_method("orders", "stock", data=b"", http_verb="GET")
    echo = json.loads(resp.data)
    check(echo == {"app": "orders", "verb": "GET", "path": "/stock"}, f"second runtime's app: {echo}")


def delivery_to_http_app(d, events):
    # The runtime subscribes once the app has answered /dapr/subscribe: publish until one arrives.
    for _ in range(150):
        d.publish_event(PUBSUB, "sdk-own", data=json.dumps({"order": 1}), data_content_type="application/json")
        if events:
            break
        time.sleep(0.1)
    check(events, "the HTTP app got the event")
    content_type, event = events[0]
    check(content_type == "application/cloudevents+json", f"content type: {content_type}")
    check(event["data"] == {"order": 1} and event["topic"] == "sdk-own", f"event: {event}")


def bindings(d, sink):
    resp = d.invoke_binding("web", "create", data=b"hello binding")
    echo = json.loads(resp.data)
    check(echo["app"] == "sink" and echo["body"] == "hello binding", f"binding: {echo}")


def configuration(d, key):
    items = d.get_configuration(CONFIG, keys=[key]).items
    check(items.get(key) is not None and items[key].value == "before", f"get_configuration: {items}")
    changed = threading.Event()

    def handler(_id, response):
        item = response.items.get(key)
        if item is not None and item.value == "after":
            changed.set()

    sub_id = d.subscribe_configuration(CONFIG, [key], handler)
    check(sub_id, "subscribe_configuration returns the subscription id")
    print("SUBSCRIBED", flush=True)
    check(changed.wait(15), "the change reached the subscriber")
    check(d.unsubscribe_configuration(CONFIG, sub_id), "unsubscribe_configuration")


def main():
    config_key, own_port, orders_port, sink_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    events = []
    serve_app(own_port, "own", events)
    serve_app(orders_port, "orders", [])
    serve_app(sink_port, "sink", [])
    with DaprClient() as d:
        invocation(d)
        delivery_to_http_app(d, events)
        bindings(d, sink_port)
        state(d)
        lock(d)
        metadata_secrets_publish(d)
        streaming_subscription(d)
        configuration(d, config_key)
    # One write, so the SDK's watcher thread, which prints when it stops, cannot split the line.
    sys.stdout.write("OK\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
