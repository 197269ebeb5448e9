import { DynamicModule, Global, Module } from '@nestjs/common';
import { loadConfig, PorticoConfig } from './config';

/** The validated configuration, injectable as a concrete class. */
export class ConfigService {
  constructor(readonly values: PorticoConfig) {}
}

@Global()
@Module({})
export class ConfigModule {
  /** Provides a configuration: the given one (tests) or the one read from the environment. */
  static forRoot(config?: PorticoConfig): DynamicModule {
    return {
      module: ConfigModule,
      providers: [
        { provide: ConfigService, useFactory: () => new ConfigService(config ?? loadConfig()) },
      ],
      exports: [ConfigService],
    };
  }
}
