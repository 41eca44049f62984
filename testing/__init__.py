"""What tests (and benchmarks) share; production code never imports it (docs/TESTING.md).

    fixtures     the pytest plugin with the shared fixtures (tenants, live processes, the WeCom sandbox)
    browser      the pytest plugin of the browser tests (Debian's Chromium through Playwright)
    factories    factory_boy factories for the main models of every app
    processes    live processes against the test database (LiveProcess, free_port, live_env)
    waiting      wait_until(...), and wait_until_idle(...) before asserting that nothing else happened
    broker       what the test Dramatiq broker holds (queued_messages, queued_jobs)
    threads      run_in_threads(...) for races: exceptions re-raised, every thread finished
    vectors      Tencent's sample credentials and the official WeCom test vectors
    wecom        callbacks the way WeCom sends them; purging a committed app
    accounts     the staff password, session cookies and logged-in clients
    spreadsheets, kb_corpus   data of the knowledge-base tests
    tests        the tests of these helpers
"""
