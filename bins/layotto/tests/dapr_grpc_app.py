"""A gRPC app made with the unmodified Dapr Python SDK (`dapr.ext.grpc.App`)
behind layotto-rs.

Run by tests/dapr_sdk.rs with the app's port as its argument and
DAPR_GRPC_PORT / DAPR_HTTP_PORT pointing at the runtime, which was started
with `--app-protocol grpc --app-port <port>` and a cron input binding
`tick`. Checks service invocation (OnInvoke), delivery on the default route
and on a routing rule's route, and input binding events; prints `OK` when
every check passed, else raises.
"""

import json
import sys
import threading
import time

from dapr.clients import DaprClient
from dapr.ext.grpc import App, BindingRequest, InvokeMethodRequest, InvokeMethodResponse, Rule, SubscriptionMessage

PUBSUB, TOPIC, APP_ID = "pub_subs_demo", "sdk-grpc-orders", "dapr-grpc-app"


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def wait_for(what, condition, seconds=15):
    deadline = time.time() + seconds
    while not condition():
        check(time.time() < deadline, f"timed out waiting for {what}")
        time.sleep(0.05)


def main():
    port = int(sys.argv[1])
    app = App()
    plain, vip, ticks = [], [], []

    @app.method("echo")
    def echo(request: InvokeMethodRequest) -> InvokeMethodResponse:
        return InvokeMethodResponse(b"echo:" + request.data, "text/plain")

    @app.subscribe(PUBSUB, TOPIC)
    def orders(event: SubscriptionMessage) -> None:
        plain.append(event.data())

    @app.subscribe(PUBSUB, TOPIC, rule=Rule("event.data.vip == true", 1))
    def vip_orders(event: SubscriptionMessage) -> None:
        vip.append(event.data())

    @app.binding("tick")
    def tick(request: BindingRequest) -> None:
        ticks.append(request.binding_metadata)

    threading.Thread(target=app.run, args=(port, "127.0.0.1"), daemon=True).start()

    with DaprClient() as d:
        # The runtime lists the app's subscriptions once the app is up: publish until one arrives.
        deadline = time.time() + 20
        while not plain:
            check(time.time() < deadline, "no event reached the gRPC app")
            d.publish_event(PUBSUB, TOPIC, json.dumps({"vip": False, "n": 1}), data_content_type="application/json")
            time.sleep(0.2)
        d.publish_event(PUBSUB, TOPIC, json.dumps({"vip": True, "n": 2}), data_content_type="application/json")
        wait_for("the event matching the rule", lambda: vip)
        check(vip[0] == {"vip": True, "n": 2}, f"rule route got {vip}")
        check(all(e.get("vip") is False for e in plain), f"default route got {plain}")

        resp = d.invoke_method(APP_ID, "echo", data=b"hi")
        check(resp.data == b"echo:hi", f"OnInvoke answered {resp.data!r}")

        wait_for("input binding events", lambda: len(ticks) >= 2)
        check("readTimeUTC" in ticks[0], f"binding metadata: {ticks[0]}")
    app.stop()
    print("OK", flush=True)


if __name__ == "__main__":
    main()
