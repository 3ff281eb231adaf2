# gunicorn settings for the admission webhooks and the push receiver (mirrors stoker_k8s.gunicorn).
# `stoker webhook` and `stoker receiver` apply these same settings themselves (stoker_k8s.gunicorn);
# this file states them for review, and for a gunicorn you run by hand around those apps.
bind = "0.0.0.0:9443"
certfile = "/etc/stoker/tls/tls.crt"
keyfile = "/etc/stoker/tls/tls.key"
workers = 2
threads = 4
# gthread with a non-blocking reading front: a request is read whole (TLS handshake and head
# within 10 s, body within 20 s, body at most 1 MiB: stoker_k8s.intake.Limits) before a thread
# runs the app, so idle and slow clients hold no request thread (H8).
worker_class = "stoker_k8s.intake.IntakeWorker"
worker_connections = 1000
keepalive = 5
timeout = 30
graceful_timeout = 10
accesslog = None
errorlog = "-"
loglevel = "warning"
