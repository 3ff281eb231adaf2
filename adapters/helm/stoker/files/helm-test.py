"""`helm test`: the controller and the webhook (and the receiver, when enabled) answer.

Run by the chart's test pod (templates/tests/answers.yaml) with the controller image's own
Python, standard library only. The URLs come from the environment: CONTROLLER_URL (its
/metrics), WEBHOOK_URL (its base), RECEIVER_URL (its /healthz, optional). Each check is retried
for CHECK_SECONDS (60) so that a `helm test` right after `helm install` waits for new pods.
"""

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

# The webhook's certificate is checked by the API server, with the caBundle this pod cannot
# read; here only its answers are: nothing secret is sent.
UNVERIFIED = ssl._create_unverified_context()
# A GatewaySync without a spec: the webhook must refuse it, answering the review's uid.
REVIEW = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {
        "uid": "stoker-helm-test",
        "operation": "CREATE",
        "object": {
            "apiVersion": "stoker.io/v1alpha1",
            "kind": "GatewaySync",
            "metadata": {"name": "helm-test"},
        },
    },
}


def fetch(url, body=None):
    """The response body of a GET (or a JSON POST of `body`) to `url`, within 10 s."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10, context=UNVERIFIED) as response:
        return response.read().decode("utf-8", "replace")


def controller(base):
    """The controller serves its metrics."""
    if "# HELP stoker_" not in fetch(base):
        raise ValueError("its /metrics holds no stoker_ metric")


def webhook(base):
    """The webhook is healthy and refuses an invalid GatewaySync, answering the review."""
    fetch(f"{base}/healthz")
    answer = json.loads(fetch(f"{base}/validate-gatewaysync", REVIEW)).get("response") or {}
    if answer.get("uid") != "stoker-helm-test" or answer.get("allowed") is not False:
        raise ValueError(f"/validate-gatewaysync answered {answer!r}, not a refusal")


def receiver(url):
    """The receiver is healthy."""
    fetch(url)


def check(name, test, url, seconds):
    """Run one check until it passes or `seconds` have passed; True when it passed."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            test(url)
        except (OSError, ValueError, urllib.error.URLError) as error:
            if time.monotonic() >= deadline:
                print(f"FAIL {name} at {url}: {error}", flush=True)
                return False
            time.sleep(2)
        else:
            print(f"ok   {name} at {url}", flush=True)
            return True


def main():
    """Exit 0 when every configured component answers, 1 otherwise."""
    seconds = float(os.environ.get("CHECK_SECONDS", "60"))
    checks = [("controller", controller, os.environ["CONTROLLER_URL"])]
    checks.append(("webhook", webhook, os.environ["WEBHOOK_URL"]))
    if os.environ.get("RECEIVER_URL"):
        checks.append(("receiver", receiver, os.environ["RECEIVER_URL"]))
    results = [check(name, test, url, seconds) for name, test, url in checks]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
