import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { ConfigService, secretEnvironment } from '@portico/config';
import { DeclarativeApplyService, readDeclarativeConfigFile } from '@portico/tenancy';

/** A declarative config file that does not validate: boot stops, listing every problem. */
export class DeclarativeConfigError extends Error {
  constructor(file: string, problems: readonly { path: string; message: string }[]) {
    super(
      `${file} is invalid:\n${problems.map((p) => `  - ${p.path || '(file)'}: ${p.message}`).join('\n')}`,
    );
    this.name = 'DeclarativeConfigError';
  }
}

/** Applies PORTICO_CONFIG_FILE at boot, before the listener opens. */
@Injectable()
export class DeclarativeConfigLoader implements OnApplicationBootstrap {
  private readonly logger = new Logger(DeclarativeConfigLoader.name);

  constructor(
    private readonly config: ConfigService,
    private readonly applier: DeclarativeApplyService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const file = this.config.values.declarativeConfigFile;
    if (!file) {
      return;
    }
    const result = readDeclarativeConfigFile(file, secretEnvironment());
    if (!result.ok) {
      throw new DeclarativeConfigError(file, result.problems);
    }
    const report = await this.applier.apply(result.config, 'config-file');
    this.logger.log(
      `${file}: ${result.config.tenants.length} tenant(s); ` +
        `${report.created.length} created, ${report.updated.length} updated, ${report.deleted.length} deleted`,
    );
  }
}
