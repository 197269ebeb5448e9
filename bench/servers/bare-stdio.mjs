// stdio baseline: a minimal Node process that reads newline-delimited JSON-RPC
// on stdin, parses each line and writes a JSON-RPC result echoing the argument
// to stdout. No protocol logic: the floor for a round trip through two pipes
// and two Node event loops. Exits when stdin ends (so also when the bench dies).
import { ECHO_TOOL } from './common.mjs';

function answer(line) {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    // answered below as an error
  }
  if (msg?.method !== 'tools/call' || msg.params?.name !== ECHO_TOOL) {
    return {
      jsonrpc: '2.0',
      id: msg?.id ?? null,
      error: { code: -32601, message: 'Method not found' },
    };
  }
  return {
    jsonrpc: '2.0',
    id: msg.id,
    result: { content: [{ type: 'text', text: String(msg.params.arguments?.message ?? '') }] },
  };
}

let buffered = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buffered += chunk;
  let newline;
  while ((newline = buffered.indexOf('\n')) >= 0) {
    const line = buffered.slice(0, newline);
    buffered = buffered.slice(newline + 1);
    if (line.trim()) {
      process.stdout.write(`${JSON.stringify(answer(line))}\n`);
    }
  }
});
process.stdin.on('end', () => process.exit(0));
