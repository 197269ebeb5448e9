import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PorticoConfig } from '@portico/config';
import type { MasterKey } from './credential-cipher';

/**
 * The configured master keys, or (embedded mode) the key kept in DATA_DIR/master.key, created
 * with mode 0600 on first start. A cluster must configure MASTER_KEYS: every node needs the
 * same keys.
 */
export function resolveMasterKeys(security: PorticoConfig['security']): MasterKey[] {
  if (security.masterKeys.length > 0) {
    return [...security.masterKeys];
  }
  const file = join(security.dataDir, 'master.key');
  if (!existsSync(file)) {
    mkdirSync(security.dataDir, { recursive: true });
    const id = `local-${randomBytes(3).toString('hex')}`;
    writeFileSync(file, `${id}:${randomBytes(32).toString('base64')}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
    chmodSync(file, 0o600);
  }
  return readFileSync(file, 'utf8')
    .split(/[\n,]/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => {
      const [id, material] = line.split(':', 2) as [string, string];
      return { id, key: Buffer.from(material, 'base64') };
    });
}
