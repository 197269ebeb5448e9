/*
 * Official SDK clients (v2 in either era, v1) that authenticate to a tenant endpoint with a
 * static bearer token passed as `requestInit.headers`, recording every exchange.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CLIENT_CAPABILITIES, HttpRecorder, V2_NEGOTIATION } from './sdk';

export interface AuthedClient<C> {
  client: C;
  recorder: HttpRecorder;
}

function requestInit(token: string | undefined): RequestInit | undefined {
  return token === undefined ? undefined : { headers: { Authorization: `Bearer ${token}` } };
}

/** SDK v2 client in `mode`; the connect promise rejects when the gateway refuses it. */
export function buildV2(
  url: string,
  mode: 'modern' | 'legacy',
  token: string | undefined,
): AuthedClient<Client> & { connect: () => Promise<void> } {
  const recorder = new HttpRecorder();
  const client = new Client(
    { name: `e2e-auth-v2-${mode}`, version: '1.0.0' },
    { capabilities: CLIENT_CAPABILITIES, versionNegotiation: V2_NEGOTIATION[mode] },
  );
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: recorder.fetch,
    requestInit: requestInit(token),
  });
  return { client, recorder, connect: () => client.connect(transport) };
}

/** SDK v1 client; the connect promise rejects when the gateway refuses it. */
export function buildV1(
  url: string,
  token: string | undefined,
): AuthedClient<V1Client> & { connect: () => Promise<void> } {
  const recorder = new HttpRecorder();
  const client = new V1Client(
    { name: 'e2e-auth-v1', version: '1.0.0' },
    { capabilities: CLIENT_CAPABILITIES },
  );
  const transport = new V1Transport(new URL(url), {
    fetch: recorder.fetch,
    requestInit: requestInit(token),
  });
  return { client, recorder, connect: () => client.connect(transport) };
}
