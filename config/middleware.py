"""One thread per request under ASGI.

Django builds the middleware chain from the bottom up and keeps each middleware in the mode of
the one below it when it can. Under ASGI the bottom is async, so every MiddlewareMixin (Django's
own, django-prometheus') ran async and hopped to a thread for each process_request and
process_response, until our sync tenant middlewares hopped back: a dozen thread switches per
request, about 3 ms of CPU per WeCom callback (docs/BENCHMARKS.md, ingress). A sync-only
middleware at the bottom makes the whole chain sync: one hop in, one for the view, one out.
"""


class SyncChainMiddleware:
    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)
