import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

/** The machine's PostgreSQL (trust auth on loopback); each suite works in a schema of its own. */
export const TEST_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';

export interface TestSchema {
  readonly url: string;
  readonly schema: string;
  /** Environment entries that point the gateway at this schema. */
  readonly env: Record<string, string>;
  drop(): Promise<void>;
}

/** Creates an empty, uniquely named schema; `drop()` removes it with everything in it. */
export async function createPostgresSchema(prefix = 'portico_t'): Promise<TestSchema> {
  const schema = `${prefix}_${randomBytes(5).toString('hex')}`;
  await withClient((client) => client.query(`CREATE SCHEMA "${schema}"`));
  return {
    url: TEST_POSTGRES_URL,
    schema,
    env: { DATABASE_URL: TEST_POSTGRES_URL, DATABASE_SCHEMA: schema },
    drop: async () => {
      await withClient((client) => client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
    },
  };
}

async function withClient<T>(run: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** The two database kinds every persistence-touching suite runs against. */
export const DATABASE_KINDS = ['sqlite', 'postgres'] as const;
export type DatabaseKind = (typeof DATABASE_KINDS)[number];

/** Environment for a gateway on `kind`: an in-memory SQLite database or a fresh PG schema. */
export async function testDatabaseEnv(
  kind: DatabaseKind,
): Promise<{ env: Record<string, string>; cleanup: () => Promise<void> }> {
  if (kind === 'sqlite') {
    return { env: { DATABASE_PATH: ':memory:' }, cleanup: async () => undefined };
  }
  const schema = await createPostgresSchema();
  return { env: schema.env, cleanup: () => schema.drop() };
}
