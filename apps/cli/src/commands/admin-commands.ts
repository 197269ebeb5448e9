import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import type { Repository } from 'typeorm';
import { PorticoConfig, secretEnvironment } from '@portico/config';
import {
  BackendEntity,
  CredentialCipher,
  dataSourceOptions,
  openDataSource,
} from '@portico/persistence';
import { DeclarativeApplyService, readDeclarativeConfigFile } from '@portico/tenancy';
import { getRepositoryToken } from '@nestjs/typeorm';
import { CliModule } from '../cli.module';

/** Output of a command: lines for stdout, and the exit code. */
export interface CommandResult {
  code: number;
  out: string[];
}

/** `portico db migrate`: applies pending migrations and lists them. */
export async function dbMigrate(config: PorticoConfig): Promise<CommandResult> {
  const { dataSource, applied } = await openDataSource(dataSourceOptions(config.database), true);
  await dataSource.destroy();
  return {
    code: 0,
    out: applied.length > 0 ? applied.map((name) => `applied ${name}`) : ['database is up to date'],
  };
}

/** `portico config validate [file]`: every problem with its path, exit 1 when there are any. */
export function configValidate(config: PorticoConfig, file?: string): CommandResult {
  const path = file ?? config.declarativeConfigFile;
  if (!path) {
    return { code: 2, out: ['no file: pass a path or set PORTICO_CONFIG_FILE'] };
  }
  const result = readDeclarativeConfigFile(path, secretEnvironment());
  if (!result.ok) {
    return {
      code: 1,
      out: result.problems.map((p) => `${path}: ${p.path || '(file)'}: ${p.message}`),
    };
  }
  const tenants = result.config.tenants.map((t) => t.slug).join(', ') || 'none';
  return { code: 0, out: [`${path}: valid (tenants: ${tenants})`] };
}

/** `portico config apply [file]`: validates, then makes the database match the file. */
export async function configApply(config: PorticoConfig, file?: string): Promise<CommandResult> {
  const validated = configValidate(config, file);
  if (validated.code !== 0) {
    return validated;
  }
  const path = (file ?? config.declarativeConfigFile)!;
  const result = readDeclarativeConfigFile(path, secretEnvironment());
  if (!result.ok) {
    return { code: 1, out: [] };
  }
  return withContext(config, async (app) => {
    const report = await app.get(DeclarativeApplyService).apply(result.config, 'cli');
    const out = [
      ...report.created.map((x) => `created ${x}`),
      ...report.updated.map((x) => `updated ${x}`),
      ...report.deleted.map((x) => `deleted ${x}`),
    ];
    return { code: 0, out: out.length > 0 ? out : ['nothing to change'] };
  });
}

/**
 * `portico keys rotate`: re-seals every backend credential with the active (first) master
 * key, so older keys can then be removed from MASTER_KEYS.
 */
export async function keysRotate(config: PorticoConfig): Promise<CommandResult> {
  return withContext(config, async (app) => {
    const cipher = app.get(CredentialCipher);
    const backends = app.get<Repository<BackendEntity>>(getRepositoryToken(BackendEntity));
    let resealed = 0;
    let current = 0;
    for (const backend of await backends.find()) {
      if (!backend.credentialsSealed) {
        continue;
      }
      if (CredentialCipher.keyIdOf(backend.credentialsSealed) === cipher.activeKeyId) {
        current += 1;
        continue;
      }
      const binding = `${backend.tenantId}/${backend.name}`;
      const sealed = cipher.seal(cipher.open(backend.credentialsSealed, binding), binding);
      await backends.update({ id: backend.id }, { credentialsSealed: sealed });
      resealed += 1;
    }
    return {
      code: 0,
      out: [
        `re-sealed ${resealed} backend credential(s) with key "${cipher.activeKeyId}"; ` +
          `${current} already used it`,
      ],
    };
  });
}

async function withContext(
  config: PorticoConfig,
  run: (app: INestApplicationContext) => Promise<CommandResult>,
): Promise<CommandResult> {
  const app = await NestFactory.createApplicationContext(CliModule.forRoot(config), {
    logger: ['error'],
  });
  try {
    return await run(app);
  } finally {
    await app.close();
  }
}
