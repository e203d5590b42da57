"""An app served by ``ServerApp.run(workers=N)``: reports its worker's pid, echoes streams.

Usage: python workers_app.py CERT KEY PORT WORKERS
"""

from __future__ import annotations

import logging
import os
import sys

from pywebtransport import ServerApp, ServerConfig, WebTransportSession, WebTransportStream
from pywebtransport.exceptions import WebTransportError

app = ServerApp(config=ServerConfig.create(certfile=sys.argv[1], keyfile=sys.argv[2]))


@app.route("/who")
async def who(session: WebTransportSession) -> None:
    try:
        stream = await session.create_unidirectional_stream()
        await stream.write_all(str(os.getpid()).encode())
        async for incoming in session.incoming_streams():
            if isinstance(incoming, WebTransportStream):
                await incoming.write_all(await incoming.read_all())
    except WebTransportError:
        pass  # the client left early (the test's first probe session does)


if __name__ == "__main__":
    # The parent logs "N worker(s) serving" once every worker listens; the test waits for it.
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s", force=True)
    print("starting", flush=True)
    app.run(host="127.0.0.1", port=int(sys.argv[3]), workers=int(sys.argv[4]))
    print("stopped", flush=True)
