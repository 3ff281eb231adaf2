# gunicorn settings for the admission webhooks and the push receiver (mirrors stoker_k8s.gunicorn).
# Run: gunicorn -c adapters/gunicorn/gunicorn.conf.py 'stoker_k8s.wsgi:application'
bind = "0.0.0.0:9443"
certfile = "/etc/stoker/tls/tls.crt"
keyfile = "/etc/stoker/tls/tls.key"
workers = 2
worker_class = "sync"
timeout = 30
graceful_timeout = 10
accesslog = None
errorlog = "-"
loglevel = "warning"
