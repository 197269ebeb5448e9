/*
 * Property-based hostile input for the protocol core alone: random and mutated message streams
 * through McpEngine + McpConnection, exactly as the stream transports (stdio, WebSocket) feed
 * them. Fixed seed and bounded counts here; scripts/fuzz-long.mjs runs the long version.
 */
import * as fc from 'fast-check';
import {
  Frame,
  OWN_PROFILE,
  PARSE_FAILED,
  Step,
  StreamEndpoint,
  describeFailure,
  driveStream,
  frameText,
  fuzzTools,
  hostile,
  modernMeta,
  parseFrame,
  streamScenarioArb,
} from '../../../test/support/fuzz';
import { StaticCatalog } from './catalog';
import { McpConnection, PARSE_ERROR } from './connection';
import { McpEngine } from './engine';
import { classify } from './jsonrpc';

const SEED = 42;

const send = (value: unknown): Step => ({ t: 'send', frame: { kind: 'json', value } });

/**
 * Minimal counterexamples the fuzz found, replayed before the random runs (fast-check
 * `examples`) so that they fail until the engine is fixed.
 */
const FOUND: Step[][] = [
  // completion/complete with a non-string ref.uri (or ref.name) whose `toString` is not a
  // function: String(uri) throws a TypeError and the client gets -32603 "Internal error"
  // instead of -32602.
  [
    send({
      jsonrpc: '2.0',
      id: 1,
      method: 'completion/complete',
      params: {
        ref: { type: 'ref/resource', uri: { toString: 1 } },
        argument: { name: 'a' },
        _meta: modernMeta(),
      },
    }),
  ],
  // A client's error answer to elicitation/create is relayed verbatim as the tools/call error:
  // a non-integer code (0.5) reaches the wire, which JSON-RPC 2.0 forbids.
  [
    send({
      jsonrpc: '2.0',
      id: 'init',
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: { elicitation: {} },
        clientInfo: { name: 'fuzz', version: '1' },
      },
    }),
    send({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'elicit' } }),
    { t: 'pause', ms: 5 },
    { t: 'reply', pick: 0, reply: { error: { code: 0.5, message: 'no' } } },
  ],
];

/** McpConnection as a transport drives it: one decoded frame per receive, never awaited. */
class EngineEndpoint implements StreamEndpoint {
  readonly received: unknown[] = [];
  readonly problems: string[] = [];
  readonly connection: McpConnection;

  constructor(engine: McpEngine) {
    this.connection = new McpConnection(engine, {
      send: (message) => {
        // What every transport does with a message: serialise it.
        const text = JSON.stringify(message) as string | undefined;
        if (text === undefined) {
          this.problems.push('the server sent a message JSON cannot represent');
          return;
        }
        this.received.push(JSON.parse(text));
      },
    });
  }

  send(frame: Frame): Promise<{ delivery: 'delivered' }> {
    const value = parseFrame(frameText(frame));
    try {
      this.connection
        .receive(value === PARSE_FAILED ? PARSE_ERROR : value)
        .catch((err: unknown) => this.problems.push(`receive() rejected: ${String(err)}`));
    } catch (err) {
      this.problems.push(`receive() threw: ${String(err)}`);
    }
    return Promise.resolve({ delivery: 'delivered' });
  }

  /** Waits for every request; then closing must release whatever is left (subscriptions). */
  async settle(timeoutMs: number): Promise<boolean> {
    const finished = await this.connection.drain(timeoutMs);
    this.connection.close();
    return finished || (await this.connection.drain(1000));
  }
}

describe('hostile input (property-based, engine alone)', () => {
  // An unhandled rejection fails the running test: Jest watches for them.
  let engine: McpEngine;

  beforeAll(() => {
    engine = new McpEngine({
      serverInfo: { name: 'fuzz', version: '1' },
      catalog: new StaticCatalog({ tools: fuzzTools() }),
      secret: 'fuzz-spec-secret-fuzz-spec-secret',
      pageSize: 2,
      clientRequestTimeoutMs: 100,
    });
  });

  afterAll(() => {
    engine.close();
  });

  it('classifies any JSON value without throwing', () => {
    fc.assert(
      fc.property(hostile, (value) => {
        const verdict = classify(JSON.parse(JSON.stringify(value) ?? 'null'));
        expect(['request', 'notification', 'response', 'invalid']).toContain(verdict.kind);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('answers random streams with valid JSON-RPC, once per request, and keeps serving', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(streamScenarioArb(OWN_PROFILE, 30), async (steps) => {
        const endpoint = new EngineEndpoint(engine);
        const report = await driveStream(endpoint, steps, {
          profile: OWN_PROFILE,
          settleMs: 500,
          answerTimeoutMs: 3000,
          sentinelId: `fuzz-sentinel-${++run}`,
        });
        if (report.problems.length > 0) {
          throw new Error(describeFailure(report, endpoint.received));
        }
      }),
      { seed: SEED, numRuns: 200, examples: FOUND.map((steps) => [steps]) },
    );
  }, 120_000);
});
