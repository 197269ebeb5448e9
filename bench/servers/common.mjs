// Shared plumbing for the baseline fixture servers. Each server runs in its own
// child process (forked by bench/lib/procs.mjs) so that it never shares an event
// loop — or a CPU core, when the OS cooperates — with the load generator.

/** The one tool every fixture exposes; mirrors what the bench sends. */
export const ECHO_TOOL = 'echo';

/** Bind loopback only: this is a benchmark fixture, never a public server. */
export const HOST = process.env.HOST ?? '127.0.0.1';

/**
 * Tell the parent which port we got and make sure we never outlive it.
 * The parent asks for port 0 (OS-assigned), so the actual port must be
 * reported back; IPC is used instead of stdout so server logs can't garble it.
 */
export function announceReady(server, name) {
  const { port } = server.address();
  if (process.send) {
    process.send({ type: 'ready', port });
    // If the parent dies (even by SIGKILL) the IPC channel closes: exit too,
    // so no fixture server is ever left listening.
    process.on('disconnect', () => process.exit(0));
  } else {
    console.log(`${name} listening on http://${HOST}:${port}/mcp`);
  }
}

export function listenPort() {
  return Number(process.env.PORT ?? 0);
}

/** Collect a Node request body as a string (fixtures only see tiny bodies). */
export function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}
