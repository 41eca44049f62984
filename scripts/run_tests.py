"""`make test`'s pytest: the tests that start processes or a browser (marker `live`) and all the others run at the
same time, as two pytest processes with a database and a Redis db of their own each. The live tests spend most
of their time waiting for the servers, workers and browser they start, which leaves a core to the others. On 2
cores the live run takes about 440 s and the other about 265 s beside it, 7.5 minutes in all, inside the 15 of the
budget with room for CI's set-up (docs/TESTING.md, "Time").

The live run keeps the usual names (DATABASE_URL's database, TEST_REDIS_DB, default 15); the other run gets
`<database>_others` and TEST_REDIS_DB - 1. Its output is printed after the live run's, so neither is
interleaved. Arguments are passed to both runs; the exit status is the worse of the two.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import env  # noqa: E402  (reads .services/env as the settings do)


def database_url_named(url: str, suffix: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path=f"{parts.path.rstrip('/')}{suffix}").geturl()


def main(argv: list[str]) -> int:
    live_redis_db = env.get_int("TEST_REDIS_DB", 15)
    pytest = [sys.executable, "-m", "pytest", *argv]
    others_env = {**os.environ, "TEST_REDIS_DB": str(live_redis_db - 1),
                  "DATABASE_URL": database_url_named(env.DATABASE_URL, "_others")}
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as others_output:
        others = subprocess.Popen([*pytest, "-m", "not live"], cwd=ROOT, env=others_env, stdout=others_output,
                                  stderr=subprocess.STDOUT)
        try:
            live = subprocess.call([*pytest, "-m", "live"], cwd=ROOT)
            others_status = others.wait()
        finally:
            if others.poll() is None:  # interrupted: do not leave it running
                others.kill()
        others_output.seek(0)
        print("\n===== the tests that start no processes (run beside the live ones) =====\n", flush=True)
        sys.stdout.write(others_output.read())
    print(f"\nlive tests: exit {live}; the others: exit {others_status}", flush=True)
    return max(live, others_status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
